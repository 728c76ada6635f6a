"""SimBus: bus semantics, the wire-time model and fault injection, driven through ``SimBus.transact``."""

import pytest

from hardware.feetech import protocol as P
from hardware.feetech.errors import ProtocolError
from hardware.feetech.protocol import BROADCAST_ID, PacketDecoder, StatusPacket, wire_time
from hardware.feetech.tables import REGISTERS
from sim.feetech import FaultProfile, SimBus
from sim.feetech.bus import Reply, get_bus, register_bus, unregister_bus
from sim.feetech.faults import LOW_VOLTAGE_V
from sim.feetech.motor import SimpleMotor
from sim.feetech.servo import EmulatedServo

MBAUD = 1_000_000


def decode(replies: list[Reply]) -> list[StatusPacket]:
    out = []
    for r in replies:
        (pkt,) = PacketDecoder("status").feed(r.data)
        assert isinstance(pkt, StatusPacket), pkt
        out.append(pkt)
    return out


def write(bus: SimBus, id_: int, name: str, value: int, t: float = 0.0, baud: int = MBAUD) -> list[Reply]:
    reg = REGISTERS[name]
    return bus.transact(P.write(id_, reg.address, reg.encode(value)), t, baud)


def test_ping_reply_and_its_wire_time():
    bus = SimBus(ids=[1, 2, 3])
    (reply,) = bus.transact(P.ping(1), 10.0, MBAUD)
    assert reply.data == bytes.fromhex("FF FF 01 02 00 FC")
    assert reply.ready_at == pytest.approx(10.0 + wire_time(6, MBAUD) + wire_time(6, MBAUD))
    assert reply.ready_at == pytest.approx(10.0 + 120e-6)


def test_wire_time_scales_with_the_baud_rate():
    bus = SimBus([EmulatedServo(1, baudrate_code=4)])  # 115200
    (reply,) = bus.transact(P.read(1, 56, 2), 0.0, 115_200)
    assert reply.ready_at == pytest.approx((8 + 8) * 10 / 115_200)


def test_read_example_through_the_bus():
    bus = SimBus([EmulatedServo(1, plant=SimpleMotor(position=1304))])
    (reply,) = bus.transact(bytes.fromhex("FF FF 01 04 02 38 02 BE"), 0.0, MBAUD)
    assert reply.data == bytes.fromhex("FF FF 01 04 00 18 05 DD")


def test_broadcast_write_gets_no_reply_and_runs_everywhere():
    bus = SimBus(ids=[1, 2, 3])
    assert write(bus, BROADCAST_ID, "Acceleration", 254) == []
    assert all(s.read_register("Acceleration") == 254 for s in bus.servos.values())


def test_broadcast_ping_every_servo_answers_in_id_order():
    bus = SimBus([EmulatedServo(5), EmulatedServo(2), EmulatedServo(9)])
    replies = bus.transact(P.ping(BROADCAST_ID), 0.0, MBAUD)
    assert [p.id for p in decode(replies)] == [2, 5, 9]
    assert [r.ready_at for r in replies] == sorted(r.ready_at for r in replies)


def test_sync_read_answers_in_request_order_and_absent_ids_are_silent():
    bus = SimBus([EmulatedServo(i, plant=SimpleMotor(position=1000 + i)) for i in (1, 2, 3)])
    request = P.sync_read([3, 9, 1, 2], 56, 2)
    replies = bus.transact(request, 0.0, MBAUD)
    packets = decode(replies)
    assert [p.id for p in packets] == [3, 1, 2]
    assert [int.from_bytes(p.params, "little") for p in packets] == [1003, 1001, 1002]
    # back to back on the wire: request, then each 8-byte reply after the previous one
    expected = wire_time(len(request), MBAUD)
    for r in replies:
        expected += wire_time(8, MBAUD)
        assert r.ready_at == pytest.approx(expected)


def test_sync_read_example_layout():
    bus = SimBus(ids=[1, 2])
    request = bytes.fromhex("FF FF FE 06 82 38 08 01 02 36")
    packets = decode(bus.transact(request, 0.0, MBAUD))
    assert [(p.id, len(p.params)) for p in packets] == [(1, 8), (2, 8)]


def test_sync_write_writes_each_slice_silently():
    bus = SimBus(ids=[1, 2, 3, 4])
    # hardware.md's example: ids 1-4 from 0x2A, position 2048, time 0, speed 1000
    data = {i: bytes.fromhex("00 08 00 00 E8 03") for i in (1, 2, 3, 4)}
    request = P.sync_write(0x2A, 6, data)
    assert request[:7] == bytes.fromhex("FF FF FE 20 83 2A 06") and request[-1] == 0x58
    assert bus.transact(request, 0.0, MBAUD) == []
    assert all(s.read_register("Goal_Velocity") == 1000 for s in bus.servos.values())
    assert bus.transact(P.sync_write(42, 2, {2: (700).to_bytes(2, "little"), 7: bytes(2)}), 0.0, MBAUD) == []
    assert [s.read_register("Goal_Position") for s in bus.servos.values()] == [2048, 700, 2048, 2048]


def test_sync_write_moves_the_servos():
    bus = SimBus(ids=range(1, 7))
    bus.transact(P.sync_write(40, 1, {i: b"\x01" for i in range(1, 7)}), 0.0, MBAUD)
    goals = {i: 1500 + 100 * i for i in range(1, 7)}
    bus.transact(P.sync_write(42, 2, {i: g.to_bytes(2, "little") for i, g in goals.items()}), 0.0, MBAUD)
    t = 0.0
    for _ in range(100):
        t += 0.01
        packets = decode(bus.transact(P.sync_read(list(goals), 56, 2), t, MBAUD))
    assert {p.id: int.from_bytes(p.params, "little") for p in packets} == goals


def test_reg_write_and_action_on_the_bus():
    bus = SimBus(ids=[1, 2])
    for i in (1, 2):
        (r,) = bus.transact(P.reg_write(i, 42, (1000 * i).to_bytes(2, "little")), 0.0, MBAUD)
        assert decode([r])[0].error == 0
    assert [s.read_register("Async_Write_Flag") for s in bus.servos.values()] == [1, 1]
    assert bus.transact(P.action(), 0.0, MBAUD) == []
    assert [s.read_register("Goal_Position") for s in bus.servos.values()] == [1000, 2000]


def test_return_delay_shifts_ready_at():
    bus = SimBus(ids=[1, 2])
    before = bus.transact(P.sync_read([1, 2], 56, 2), 0.0, MBAUD)
    write(bus, 1, "Return_Delay_Time", 100)  # 200 us
    after = bus.transact(P.sync_read([1, 2], 56, 2), 1.0, MBAUD)  # later: the wire is quiet again
    assert after[0].ready_at - 1.0 - before[0].ready_at == pytest.approx(200e-6)
    assert after[1].ready_at - 1.0 - before[1].ready_at == pytest.approx(200e-6)  # servo 2 waits behind servo 1
    (ping,) = bus.transact(P.ping(1), 2.0, MBAUD)
    assert ping.ready_at - 2.0 == pytest.approx(120e-6 + 200e-6)


def test_requests_queue_behind_traffic_still_on_the_wire():
    bus = SimBus(ids=[1])
    (first,) = bus.transact(P.ping(1), 0.0, MBAUD)
    (second,) = bus.transact(P.ping(1), 0.0, MBAUD)  # written while the first exchange is on the wire
    assert first.ready_at == pytest.approx(120e-6)
    assert second.ready_at == pytest.approx(2 * 120e-6)
    (third,) = bus.transact(P.ping(1), 1.0, MBAUD)
    assert third.ready_at == pytest.approx(1.0 + 120e-6)


def test_id_change_takes_effect_for_the_next_packet():
    bus = SimBus(ids=[1, 2])
    (reply,) = write(bus, 1, "ID", 7)
    assert decode([reply])[0].id == 1  # the reply comes from the old id
    assert bus.transact(P.ping(1), 0.0, MBAUD) == []
    assert decode(bus.transact(P.ping(7), 0.0, MBAUD))[0].id == 7
    assert sorted(bus.servos) == [2, 7]
    assert bus.servo(7) is bus.servos[7]


def test_baud_change_servo_answers_only_at_its_new_rate():
    bus = SimBus(ids=[1, 2])
    (reply,) = write(bus, 1, "Baud_Rate", 1)  # 500 000; the reply still goes out at the old rate
    assert decode([reply])[0].error == 0
    assert bus.transact(P.ping(1), 0.0, MBAUD) == []
    assert decode(bus.transact(P.ping(1), 0.0, 500_000))[0].id == 1
    assert bus.transact(P.ping(2), 0.0, 500_000) == []
    assert decode(bus.transact(P.ping(2), 0.0, 1_020_000))[0].id == 2  # within the 3 % a UART tolerates
    assert bus.transact(P.ping(2), 0.0, 1_100_000) == []


def test_power_cycle_keeps_only_what_was_saved():
    bus = SimBus(ids=[1])
    write(bus, 1, "Lock", 0)
    write(bus, 1, "ID", 4)  # saved
    write(bus, 4, "Lock", 1)
    write(bus, 4, "Baud_Rate", 4)  # effective at once, not saved
    assert bus.transact(P.ping(4), 0.0, MBAUD) == []
    bus.power_cycle()
    assert sorted(bus.servos) == [4]
    assert decode(bus.transact(P.ping(4), 0.0, MBAUD))[0].id == 4


def test_partial_packets_are_buffered():
    bus = SimBus(ids=[1])
    request = P.read(1, 56, 2)
    for k, b in enumerate(request[:-1]):
        assert bus.transact(bytes([b]), k * 1e-5, MBAUD) == []
    (reply,) = bus.transact(request[-1:], 1.0, MBAUD)
    assert reply.ready_at == pytest.approx(1.0 + wire_time(1, MBAUD) + wire_time(8, MBAUD))


def test_bad_checksum_is_ignored_and_the_next_packet_answered():
    bus = SimBus(ids=[1, 2])
    bad = bytearray(P.ping(1))
    bad[-1] ^= 0xFF
    replies = bus.transact(bytes(bad) + b"\x00\x13" + P.ping(2), 0.0, MBAUD)
    assert [p.id for p in decode(replies)] == [2]
    assert replies[0].ready_at == pytest.approx(wire_time(len(bad) + 2 + 6, MBAUD) + wire_time(6, MBAUD))
    assert bus.counts["bad_packets"] >= 1


def test_two_packets_in_one_write_are_answered_in_order():
    bus = SimBus(ids=[1, 2])
    replies = bus.transact(P.ping(1) + P.ping(2), 0.0, MBAUD)
    assert [p.id for p in decode(replies)] == [1, 2]
    assert replies[0].ready_at == pytest.approx(wire_time(6 + 6, MBAUD))
    assert replies[1].ready_at == pytest.approx(replies[0].ready_at + wire_time(6, MBAUD))


def test_unplug_and_plug():
    bus = SimBus(ids=[1, 2, 3])
    bus.unplug(2)
    assert not bus.is_plugged(2)
    assert [p.id for p in decode(bus.transact(P.sync_read([1, 2, 3], 56, 2), 0.0, MBAUD))] == [1, 3]
    write(bus, BROADCAST_ID, "Acceleration", 9)
    assert bus.servo(2).read_register("Acceleration") == 0  # heard nothing
    bus.plug(2)
    assert [p.id for p in decode(bus.transact(P.ping(2), 0.0, MBAUD))] == [2]
    with pytest.raises(KeyError):
        bus.unplug(42)


def test_duplicate_ids_both_answer():
    bus = SimBus([EmulatedServo(1), EmulatedServo(1)])
    assert len(bus.transact(P.ping(1), 0.0, MBAUD)) == 2


# --- faults ---------------------------------------------------------------------------------------------------------
def test_drop():
    bus = SimBus(ids=[1, 2], faults=FaultProfile(drop=1.0))
    assert bus.transact(P.sync_read([1, 2], 56, 2), 0.0, MBAUD) == []
    assert bus.fault_counts["drop"] == 2


def test_corrupt_flips_a_byte_after_the_header():
    bus = SimBus(ids=[1], faults=FaultProfile(corrupt=1.0, seed=5))
    (clean,) = SimBus(ids=[1]).transact(P.read(1, 56, 8), 0.0, MBAUD)
    for _ in range(50):
        (reply,) = bus.transact(P.read(1, 56, 8), 0.0, MBAUD)
        diff = [k for k, (a, b) in enumerate(zip(reply.data, clean.data)) if a != b]
        assert len(diff) == 1 and diff[0] >= 2  # one byte, never the FF FF header
        items = PacketDecoder("status").feed(reply.data)
        assert not any(
            isinstance(i, StatusPacket) for i in items
        )  # the driver sees a checksum error (or a short packet)
        assert all(isinstance(i, ProtocolError) for i in items)
    assert bus.fault_counts["corrupt"] == 50


def test_late():
    bus = SimBus(ids=[1, 2], faults=FaultProfile(late=1.0, late_s=0.03))
    request = P.sync_read([1, 2], 56, 2)
    replies = bus.transact(request, 0.0, MBAUD)
    assert [r.late_s for r in replies] == [0.03, 0.03]
    on_time = wire_time(len(request), MBAUD) + wire_time(8, MBAUD)
    assert replies[0].ready_at == pytest.approx(on_time + 0.03)
    assert replies[1].ready_at == pytest.approx(on_time + 0.03 + wire_time(8, MBAUD) + 0.03)
    assert bus.fault_counts["late"] == 2


def test_fault_profile_unplugged():
    bus = SimBus(ids=[1, 2, 3], faults=FaultProfile(unplugged={2}))
    assert [p.id for p in decode(bus.transact(P.sync_read([1, 2, 3], 56, 2), 0.0, MBAUD))] == [1, 3]
    bus.faults = FaultProfile()
    assert [p.id for p in decode(bus.transact(P.sync_read([1, 2, 3], 56, 2), 0.0, MBAUD))] == [1, 2, 3]


def test_fault_profile_overload():
    bus = SimBus(ids=[1, 2], faults=FaultProfile(overload={2}))
    write(bus, BROADCAST_ID, "Protection_Time", 10)
    write(bus, BROADCAST_ID, "Torque_Enable", 1)
    t = 0.0
    for _ in range(20):
        t += 0.01
        packets = decode(bus.transact(P.sync_read([1, 2], 56, 2), t, MBAUD))
    assert [(p.id, p.error) for p in packets] == [(1, 0), (2, 0x20)]
    assert bus.servo(2).read_register("Torque_Enable") == 0
    bus.faults = FaultProfile()  # lifted; the bit stays until torque is enabled again
    write(bus, 2, "Torque_Enable", 1, t=t)
    assert decode(bus.transact(P.ping(2), t + 0.5, MBAUD))[0].error == 0


def test_fault_profile_low_voltage():
    bus = SimBus(ids=[1, 5], faults=FaultProfile(low_voltage={5}))
    packets = decode(bus.transact(P.sync_read([1, 5], 62, 1), 0.0, MBAUD))
    assert [(p.id, p.error, p.params[0]) for p in packets] == [(1, 0, 74), (5, 0x01, round(LOW_VOLTAGE_V * 10))]
    assert LOW_VOLTAGE_V * 10 < REGISTERS["Min_Voltage_Limit"].default
    bus.faults = None
    assert decode(bus.transact(P.ping(5), 0.0, MBAUD))[0].error == 0
    assert bus.servo(5).voltage == 7.4


def test_faults_are_reproducible_with_a_seed():
    def run(seed):
        bus = SimBus(ids=range(1, 7), faults=FaultProfile(drop=0.2, corrupt=0.2, late=0.2, seed=seed))
        return [[r.data for r in bus.transact(P.sync_read(list(range(1, 7)), 56, 2), 0.0, MBAUD)] for _ in range(30)]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_fault_profile_parse_and_str():
    text = "corrupt=0.02,drop=0.01,late=0.01,late_ms=50,unplugged=3+4,overload=2,low_voltage=5,seed=1"
    f = FaultProfile.parse(text)
    assert f == FaultProfile(
        drop=0.01, corrupt=0.02, late=0.01, late_s=0.05, unplugged={3, 4}, overload={2}, low_voltage={5}, seed=1
    )
    assert str(f) == text.replace("late_ms=50,", "")  # 50 ms is the default
    assert FaultProfile.parse(str(f)) == f
    g = FaultProfile.parse("corrupt:0.5;late_ms:20;unplugged:3 4;overload:1-3")  # URL-friendly spelling
    assert g.corrupt == 0.5 and g.late_s == 0.02 and g.unplugged == {3, 4} and g.overload == {1, 2, 3}
    assert FaultProfile.parse(str(g)) == g
    assert FaultProfile.parse("") == FaultProfile.parse("none") == FaultProfile()
    assert str(FaultProfile()) == "none" and not FaultProfile().active and g.active
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        FaultProfile.parse("drop=2")
    with pytest.raises(ValueError, match="key=value"):
        FaultProfile.parse("dorp=0.1")
    with pytest.raises(ValueError, match="servo id"):
        FaultProfile.parse("unplugged=x")


def test_named_bus_registry():
    bus = SimBus(ids=[1])
    register_bus("test-registry", bus)
    try:
        assert get_bus("test-registry") is bus
    finally:
        assert unregister_bus("test-registry") is bus
    assert get_bus("test-registry") is None
