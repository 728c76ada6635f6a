"""Register map and sign-magnitude encoding."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.feetech.errors import RegisterError
from hardware.feetech.tables import (
    BAUD_RATES,
    REGISTERS,
    STS3215_REGISTERS,
    Area,
    decode_sign_magnitude,
    encode_sign_magnitude,
    factory_memory,
    register,
)


@pytest.mark.parametrize(
    ("value", "bit", "raw"), [(-100, 15, 0x8064), (-2047, 11, 0x0FFF), (-5, 10, 0x0405), (5, 10, 5)]
)
def test_sign_magnitude_examples(value, bit, raw):
    # lerobot-interop.md §3.2
    assert encode_sign_magnitude(value, bit) == raw
    assert decode_sign_magnitude(raw, bit) == value


@given(st.sampled_from([10, 11, 15]), st.data())
def test_sign_magnitude_round_trip(bit, data):
    v = data.draw(st.integers(-((1 << bit) - 1), (1 << bit) - 1))
    assert decode_sign_magnitude(encode_sign_magnitude(v, bit), bit) == v


def test_sign_magnitude_overflow_is_a_register_error():
    with pytest.raises(RegisterError):
        encode_sign_magnitude(2048, 11)


def test_map_covers_the_reference_table_without_overlaps():
    # every address of hardware.md §2
    expected = {0, 1, 2, 3, 5, 6, 7, 8, 9, 11, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30, 31, 33}
    expected |= set(range(34, 49, 1)) - {43, 45, 47, 49}
    expected |= {55, 56, 58, 60, 62, 63, 64, 65, 66, 67, 69, 80, 81, 82, 83, 84, 85, 86}
    starts = {r.address for r in STS3215_REGISTERS}
    assert expected <= starts
    used: set[int] = set()
    for r in STS3215_REGISTERS:
        assert not used & set(r.addresses), r.name
        used |= set(r.addresses)
        assert (r.area is Area.EEPROM) == (r.address < 40)


def test_sign_bits_and_sizes_match_the_reference():
    assert REGISTERS["Homing_Offset"].sign_bit == 11
    assert REGISTERS["Present_Load"].sign_bit == 10
    for name in ("Goal_Position", "Goal_Velocity", "Present_Position", "Present_Velocity"):
        assert REGISTERS[name].sign_bit == 15
    assert REGISTERS["Model_Number"].size == 2 and REGISTERS["Model_Number"].default == 777


def test_factory_memory_holds_the_defaults():
    mem = factory_memory()
    assert int.from_bytes(mem[3:5], "little") == 777
    assert mem[5] == 1 and mem[6] == 0 and mem[55] == 1
    assert int.from_bytes(mem[11:13], "little") == 4095


def test_register_lookup_by_name_alias_and_address():
    assert register("Present_Position").address == 56
    assert register("Goal_Speed").name == "Goal_Velocity"  # LeRobot's spelling
    assert register(42).name == "Goal_Position"
    with pytest.raises(RegisterError, match="Did you mean"):
        register("present_positon_")  # a typo on purpose
    with pytest.raises(RegisterError, match="does not fit"):
        REGISTERS["Homing_Offset"].encode(3000)


def test_baud_codes_follow_feetech_not_lerobot():
    assert BAUD_RATES[5] == 76_800 and BAUD_RATES[7] == 38_400
