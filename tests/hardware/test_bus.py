"""FeetechBus (the real driver) against the STS3215 emulator through the simbus:// pyserial URL handler."""

import time

import pytest
import serial

import sim  # noqa: F401  (registers simbus://)
from hardware.feetech import BROADCAST_ID, BusTimeoutError, FeetechError, ServoError, StatusBit
from hardware.feetech.bus import FeetechBus
from sim.feetech import FaultProfile, SimBus
from sim.feetech.bus import register_bus
from sim.feetech.servo import EmulatedServo

IDS = [1, 2, 3, 4, 5, 6]


@pytest.fixture
def port():
    p = serial.serial_for_url("simbus://?ids=1-6", baudrate=1_000_000)
    yield p
    p.close()


@pytest.fixture
def bus(port):
    with FeetechBus(port, latency_s=0.005) as b:
        yield b


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_ping_model_and_firmware(bus):
    assert bus.ping(1).error == 0
    assert bus.model_number(3) == 777
    assert bus.firmware_version(3) == "3.6"


def test_read_and_write_registers_by_name(bus):
    bus.write(2, "P_Coefficient", 16)
    assert bus.read(2, "P_Coefficient") == 16
    values = bus.read_registers(2, ["P_Coefficient", "D_Coefficient", "I_Coefficient"])
    assert values == {"P_Coefficient": 16, "D_Coefficient": 32, "I_Coefficient": 0}
    with pytest.raises(FeetechError, match="read-only"):
        bus.write(2, "Present_Position", 100)
    with pytest.raises(FeetechError, match="within"):
        bus.write(2, "Torque_Limit", 5000)


def test_signed_registers_round_trip_through_the_servo(bus):
    bus.write(1, "Homing_Offset", -1000)
    assert bus.read(1, "Homing_Offset") == -1000
    raw = bus.read_bytes(1, 31, 2)
    assert int.from_bytes(raw, "little") == (1 << 11) | 1000  # sign-magnitude on the wire
    expect = {1: -2047, 2: 2047, 3: 0, 4: -1}
    for i, value in expect.items():
        bus.write(i, "Homing_Offset", value)
    assert bus.sync_read("Homing_Offset", list(expect)) == expect  # sync_read decodes signs as read() does
    assert bus.sync_read("Goal_Position", list(expect)) == {i: bus.read(i, "Goal_Position") for i in expect}


def test_goal_moves_the_servo_and_sync_read_reports_it(bus):
    bus.sync_write("Torque_Enable", {i: 1 for i in IDS})
    goals = {i: 1500 + 100 * i for i in IDS}
    bus.sync_write("Goal_Position", goals)
    assert wait_for(lambda: all(abs(v - goals[i]) <= 3 for i, v in bus.sync_read("Present_Position", IDS).items()))
    positions = bus.sync_read("Present_Position", [6, 2, 4])
    assert list(positions) == [6, 2, 4]  # answered in request order


def test_reg_write_waits_for_action(bus, port):
    bus.write(BROADCAST_ID, "Torque_Enable", 1)  # broadcast: every servo, no reply
    assert all(port.bus.servo(i).read_register("Torque_Enable") == 1 for i in IDS)
    bus.reg_write(1, "Goal_Position", 2500)
    assert bus.read(1, "Async_Write_Flag") == 1
    assert bus.read(1, "Goal_Position") != 2500
    bus.action()
    assert bus.read(1, "Goal_Position") == 2500


def test_scan_finds_servos_at_their_baud_rates():
    sim_bus = SimBus([EmulatedServo(1), EmulatedServo(7, baudrate_code=4), EmulatedServo(9, baudrate_code=1)])
    register_bus("test-scan", sim_bus)
    with FeetechBus("simbus://test-scan", latency_s=0.002) as bus:
        found = bus.scan(range(0, 12))
        assert {(f.baudrate, f.id) for f in found} == {(1_000_000, 1), (115_200, 7), (500_000, 9)}
        assert all(f.model == "sts3215" for f in found)
        assert bus.baudrate == 1_000_000  # restored


def test_set_id_persists_across_power_cycle(bus, port):
    port.bus.unplug(6)
    bus.set_id(1, 6)
    port.bus.power_cycle()
    assert bus.try_ping(6) and not bus.try_ping(1)
    assert bus.read(6, "Lock") == 1


def test_set_id_refuses_a_taken_id(bus):
    with pytest.raises(FeetechError, match="already answers"):
        bus.set_id(1, 2)


def test_set_baudrate_then_servo_answers_only_at_the_new_rate(bus, port):
    bus.set_baudrate(3, 500_000)
    port.bus.power_cycle()
    assert not bus.try_ping(3)
    bus.baudrate = 500_000
    assert bus.try_ping(3)


def test_eeprom_write_without_unlock_is_lost_at_power_cycle(bus, port):
    bus.write(4, "Max_Torque_Limit", 500)  # Lock = 1 (factory): takes effect, not saved
    assert bus.read(4, "Max_Torque_Limit") == 500
    port.bus.power_cycle()
    assert bus.read(4, "Max_Torque_Limit") == 1000
    bus.write_eeprom(4, "Max_Torque_Limit", 500)
    port.bus.power_cycle()
    assert bus.read(4, "Max_Torque_Limit") == 500


def test_corrupted_replies_are_retried_and_counted(port):
    port.bus.faults = FaultProfile(corrupt=0.02, seed=3)
    with FeetechBus(port, retries=3, latency_s=0.005) as bus:
        for _ in range(1000):
            assert len(bus.sync_read("Present_Position", IDS)) == 6
        s = bus.stats
        print(
            f"1000 sync reads with 2% corrupted replies: {s.retries} retries, {s.checksum_errors} checksum errors, "
            f"{s.timeouts} timeouts"
        )
        assert s.retries > 0
        assert s.retries == s.checksum_errors + s.timeouts + s.malformed
        assert port.bus.fault_counts["corrupt"] > 0


def test_sync_read_values_survive_retries_in_id_order(port):
    # replies are decoded as they are taken, across a retry that asks only the missing servos again: every read
    # must still give each servo its own value, in the order asked
    with FeetechBus(port, retries=5, latency_s=0.005) as bus:
        for i in IDS:  # each servo its own reading
            bus.write(i, "Homing_Offset", 300 * i - 1000)
        truth = {i: bus.read(i, "Present_Position") for i in IDS}
        raw = {i: bus.read_bytes(i, 56, 2) for i in IDS}
        port.bus.faults = FaultProfile(corrupt=0.05, seed=11)
        order = [6, 2, 4, 1, 5, 3]
        for _ in range(300):
            got = bus.sync_read("Present_Position", order)
            assert got == {i: truth[i] for i in order} and list(got) == order
            assert bus.sync_read_bytes(order, 56, 2) == {i: raw[i] for i in order}
        assert bus.stats.retries > 0


def test_unplugged_servo_is_named(bus, port):
    port.bus.unplug(3)
    with pytest.raises(BusTimeoutError, match="servo 3") as exc:
        bus.sync_read("Present_Position", IDS)
    assert exc.value.servo_id == 3
    with pytest.raises(BusTimeoutError) as exc:
        bus.ping(3)
    assert exc.value.servo_id == 3
    assert bus.stats.retries == 2 * bus.retries  # bounded: each call retried exactly `retries` times


def test_overload_turns_torque_off_and_surfaces_as_servo_error(port):
    names = {2: "shoulder_lift"}
    with FeetechBus(port, latency_s=0.005, names=names) as bus:
        bus.write(2, "Protection_Time", 10)  # 100 ms
        bus.write(2, "Torque_Enable", 1)
        port.bus.servo(2).force_overload(True)

        def faulted():
            try:
                bus.read(2, "Present_Position")
            except ServoError:
                return True
            return False

        assert wait_for(faulted)
        with pytest.raises(ServoError, match=r"servo 2 \(shoulder_lift\).*overload") as exc:
            bus.sync_read("Present_Position", IDS)
        assert exc.value.servo_id == 2 and StatusBit.OVERLOAD in exc.value.bits
        assert bus.read(2, "Torque_Enable", check_status=False) == 0
        assert bus.read(2, "Status", check_status=False) & StatusBit.OVERLOAD


def test_timeouts_follow_the_baud_rate(bus):
    fast = bus.timeout_for(14, 48, 6)
    bus.baudrate = 115_200
    slow = bus.timeout_for(14, 48, 6)
    assert slow - fast == pytest.approx(62 * 10 / 115_200 - 62 * 10 / 1_000_000)


def test_waiting_for_a_missing_reply_does_not_burn_a_core(port):
    port.bus.unplug(1)
    with FeetechBus(port, retries=0, latency_s=0.3) as bus:
        wall, cpu = time.monotonic(), time.process_time()
        with pytest.raises(BusTimeoutError):
            bus.ping(1)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    assert wall >= 0.29
    assert cpu < 0.5 * wall


def test_unopenable_port_explains_what_to_check():
    with pytest.raises(FeetechError, match="onboard find port"):
        FeetechBus("/dev/ttyDOESNOTEXIST").connect()
