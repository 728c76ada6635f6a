"""LeRobot 0.4.4's Feetech driver (``lerobot.motors.feetech.FeetechMotorsBus``) and its SO-101 follower, unmodified,
against the STS3215 emulator served on a pseudo-terminal with the wire-time model on.

LeRobot drives the bus through Feetech's SDK (``scservo_sdk``), with its own broadcast PING, its handshake (model
number and firmware checks), its sign-magnitude encoding and its calibration registers. These tests run what
``lerobot-setup-motors``, ``lerobot-calibrate`` (with a calibration file) and a teleoperation/record loop do, and
check the result in the emulated servos' registers: the arm a LeRobot user connects to the simulation is configured
exactly as their real arm would be.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import require

pytestmark = pytest.mark.interop

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
IDS = dict(zip(NAMES, range(1, 7), strict=True))
# Horn positions of a freshly assembled arm (plant frame, steps): arbitrary, as on a real one.
START = {"shoulder_pan": 1000, "shoulder_lift": 1800, "elbow_flex": 2100, "wrist_flex": 2500, "wrist_roll": 3900}
START["gripper"] = 2000
# Extra attempts after a reply timeout, for every transaction a test makes itself (pings included), as a driver on a
# real bus retries: the VM these tests run on is sometimes paused by its host past LeRobot's 50 ms reply timeout.
# Only timeouts are retried by LeRobot's num_retry; a wrong or corrupt reply still fails.
RETRY = 2


@pytest.fixture(scope="module")
def lerobot_feetech():
    return require("lerobot.motors.feetech", "interop")


@pytest.fixture(scope="module")
def so_follower():
    return require("lerobot.robots.so_follower", "interop")


def emulated_arm(servos: dict[int, tuple[int, int]] | None = None):
    """``servos``: id -> (horn position, baud-rate code); default: the six SO-101 servos at 1 Mbaud. Served on a pty
    (``PtyBusServer``, wire time on) by a separate process, as a real bus is a separate device: a garbage
    collection in this process (~140 ms with LeRobot imported) or the SDK's busy-polling would otherwise stall the
    servos past LeRobot's 50 ms reply timeout."""
    from sim.process.bus import BusProcess, ServoSpec

    servos = servos or {IDS[n]: (START[n], 0) for n in NAMES}
    return BusProcess([ServoSpec(i, p, c) for i, (p, c) in servos.items()], wire_time=True)


@pytest.fixture
def sim_bus():
    """The emulated arm; ``sim_bus.path`` is its pty, ``sim_bus.servo(i)`` a handle on servo ``i``'s registers."""
    with emulated_arm() as proc:
        yield proc


def motors(lerobot_feetech, names=NAMES):
    from lerobot.motors import Motor, MotorNormMode

    return {n: Motor(IDS[n], "sts3215", MotorNormMode.DEGREES) for n in names}


@pytest.fixture
def lr_bus(lerobot_feetech, sim_bus):
    bus = lerobot_feetech.FeetechMotorsBus(port=sim_bus.path, motors=motors(lerobot_feetech))
    bus.connect()
    try:
        yield bus
    finally:
        if bus.is_connected:
            bus.disconnect(disable_torque=False)


def reg(sim_bus, name: str, register: str) -> int:
    return sim_bus.servo(IDS[name]).read_register(register)


def poll(fn, done, timeout_s: float = 3.0):
    """Call ``fn`` until ``done(value)``; the emulated motors advance on each request by wall-clock time."""
    deadline = time.monotonic() + timeout_s
    value = fn()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = fn()
    return value


# ------------------------------------------------------------------------------------------------ the bus driver
def test_connect_handshake_pings_every_motor_and_checks_firmware(lerobot_feetech, lr_bus):
    assert lr_bus.is_connected
    assert {n: lr_bus.ping(n, num_retry=RETRY) for n in NAMES} == dict.fromkeys(NAMES, 777)
    firmware = {
        (
            lr_bus.read("Firmware_Major_Version", n, num_retry=RETRY),
            lr_bus.read("Firmware_Minor_Version", n, num_retry=RETRY),
        )
        for n in NAMES
    }
    assert firmware == {(3, 6)}


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("unplugged", "Missing motor IDs"),
        ("model", "incorrect model numbers"),
        ("firmware", "different firmware versions"),
    ],
)
def test_connect_handshake_refuses_a_wrong_arm(lerobot_feetech, sim_bus, fault, message):
    if fault == "unplugged":
        sim_bus.unplug(3)
    elif fault == "model":
        sim_bus.servo(3).write_register("Model_Number", 2825)  # an STS3250 where an STS3215 belongs
    else:
        sim_bus.servo(3).write_register("Firmware_Minor_Version", 9)
    bus = lerobot_feetech.FeetechMotorsBus(port=sim_bus.path, motors=motors(lerobot_feetech))
    try:
        with pytest.raises(RuntimeError, match=message):
            bus.connect()
    finally:
        bus.port_handler.closePort()


def test_broadcast_ping_finds_the_one_servo_plugged_in(lerobot_feetech):
    """Broadcast PING is meant for one servo at a time (several answers collide on a real bus)."""
    with emulated_arm({4: (2048, 0)}) as srv:
        bus = lerobot_feetech.FeetechMotorsBus(port=srv.path, motors=motors(lerobot_feetech, ["wrist_flex"]))
        bus.connect(handshake=False)
        try:
            assert bus.broadcast_ping(num_retry=RETRY) == {4: 777}
        finally:
            bus.disconnect(disable_torque=False)


def test_setup_motor_finds_a_new_servo_and_sets_its_id_and_baud_rate(lerobot_feetech):
    """What `lerobot-setup-motors` does for the gripper: a factory servo (id 1) left at 500 kbaud is found by
    broadcast PING across baud rates, gets id 6 and 1 Mbaud, and keeps them through a power cycle."""
    with emulated_arm({1: (2048, 1)}) as sim_bus:
        assert sim_bus.servo(1).baudrate == 500_000
        bus = lerobot_feetech.FeetechMotorsBus(port=sim_bus.path, motors=motors(lerobot_feetech, ["gripper"]))
        try:
            bus.setup_motor("gripper")
            assert bus.get_baudrate() == 1_000_000
            assert sim_bus.ids == [6]
            servo = sim_bus.servo(6)
            assert servo.baudrate == 1_000_000
            assert servo.flash[5:7] == bytes([6, 0])  # torque off + Lock 0 first, so ID and Baud_Rate persist
            sim_bus.power_cycle()
            assert bus.ping("gripper", num_retry=RETRY) == 777
        finally:
            bus.port_handler.closePort()


def test_read_write_sync_read_sync_write_by_register_name(lerobot_feetech, lr_bus, sim_bus):
    assert lr_bus.read("Model_Number", "gripper", normalize=False, num_retry=RETRY) == 777
    assert lr_bus.read("Present_Position", "wrist_flex", normalize=False, num_retry=RETRY) == START["wrist_flex"]

    lr_bus.write("P_Coefficient", "elbow_flex", 20, normalize=False, num_retry=RETRY)
    assert reg(sim_bus, "elbow_flex", "P_Coefficient") == 20
    assert lr_bus.read("P_Coefficient", "elbow_flex", normalize=False, num_retry=RETRY) == 20

    # Maximum_Acceleration is read-only on the servo: LeRobot writes it anyway and must get an OK status back
    lr_bus.write("Maximum_Acceleration", "elbow_flex", 100, normalize=False, num_retry=RETRY)
    assert reg(sim_bus, "elbow_flex", "Maximum_Acceleration") == 254

    assert lr_bus.sync_read("Present_Position", normalize=False, num_retry=RETRY) == START

    lr_bus.enable_torque()
    for n in NAMES:
        assert (reg(sim_bus, n, "Torque_Enable"), reg(sim_bus, n, "Lock")) == (1, 1)
    goals = {n: START[n] + (150 if i % 2 else -150) for i, n in enumerate(NAMES)}
    lr_bus.sync_write("Goal_Position", goals, normalize=False)
    # no reply to a SYNC_WRITE: the emulator takes it a moment after write() returns
    assert poll(lambda: {n: reg(sim_bus, n, "Goal_Position") for n in NAMES}, goals.__eq__) == goals
    # retried on a timeout as a driver on a real bus does: the host VM is sometimes paused past the reply timeout
    final = poll(
        lambda: lr_bus.sync_read("Present_Position", normalize=False, num_retry=RETRY),
        lambda ps: all(abs(ps[n] - goals[n]) <= 3 for n in NAMES),
    )
    assert all(abs(final[n] - goals[n]) <= 3 for n in NAMES), final

    lr_bus.disable_torque()
    for n in NAMES:
        assert (reg(sim_bus, n, "Torque_Enable"), reg(sim_bus, n, "Lock")) == (0, 0)


def test_configure_motors_like_the_so101_follower(lerobot_feetech, lr_bus, sim_bus):
    with lr_bus.torque_disabled():
        lr_bus.configure_motors()  # Return_Delay_Time 0, Maximum_Acceleration 254 (read-only), Acceleration 254
        for n in NAMES:
            lr_bus.write("Operating_Mode", n, 0, num_retry=RETRY)
            lr_bus.write("P_Coefficient", n, 16, num_retry=RETRY)
            lr_bus.write("I_Coefficient", n, 0, num_retry=RETRY)
            lr_bus.write("D_Coefficient", n, 32, num_retry=RETRY)
    for n in NAMES:
        servo = sim_bus.servo(IDS[n])
        assert servo.read_register("Return_Delay_Time") == 0
        assert servo.read_register("Acceleration") == 254
        assert servo.read_register("P_Coefficient") == 16
        assert servo.flash[21] == 16  # written while Lock was 0: persisted in EEPROM
        assert (servo.read_register("Torque_Enable"), servo.read_register("Lock")) == (1, 1)


def test_calibration_registers_round_trip(lerobot_feetech, lr_bus, sim_bus):
    from lerobot.motors import MotorCalibration

    cal = {
        n: MotorCalibration(id=IDS[n], drive_mode=0, homing_offset=-1500 + 500 * k, range_min=900 + k, range_max=3100)
        for k, n in enumerate(NAMES)
    }
    lr_bus.write_calibration(cal)
    pan = sim_bus.servo(1)
    assert pan.read_bytes(31, 2) == (0x0800 | 1500).to_bytes(2, "little")  # sign-magnitude, sign in bit 11
    assert pan.read_register("Homing_Offset") == -1500
    assert (pan.read_register("Min_Position_Limit"), pan.read_register("Max_Position_Limit")) == (900, 3100)
    assert lr_bus.read_calibration() == cal
    assert lr_bus.is_calibrated

    sim_bus.servo(4).write_register("Max_Position_Limit", 3000)  # someone recalibrated one joint elsewhere
    assert not lr_bus.is_calibrated


def test_half_turn_homings_make_the_present_pose_read_2047(lerobot_feetech, lr_bus, sim_bus):
    offsets = lr_bus.set_half_turn_homings()
    assert offsets == {n: START[n] - 2047 for n in NAMES}  # includes negative offsets (bit-11 sign)
    assert {n: reg(sim_bus, n, "Homing_Offset") for n in NAMES} == offsets
    assert lr_bus.sync_read("Present_Position", normalize=False, num_retry=RETRY) == dict.fromkeys(NAMES, 2047)
    assert {n: reg(sim_bus, n, "Min_Position_Limit") for n in NAMES} == dict.fromkeys(NAMES, 0)
    assert {n: reg(sim_bus, n, "Max_Position_Limit") for n in NAMES} == dict.fromkeys(NAMES, 4095)


# ---------------------------------------------------------------------------------------- the SO-101 follower
def calibration_file(path):
    """A calibration in LeRobot's JSON format, as `lerobot-calibrate` writes it for this arm's horn positions."""
    cal = {}
    for n in NAMES:
        lo, hi = {"wrist_roll": (0, 4095), "gripper": (1900, 3400)}.get(n, (1047, 3047))
        cal[n] = {"id": IDS[n], "drive_mode": 0, "homing_offset": START[n] - 2047, "range_min": lo, "range_max": hi}
    path.write_text(json.dumps(cal, indent=4))
    return cal


def test_so101_follower_connects_configures_observes_acts_and_disconnects(so_follower, sim_bus, tmp_path, monkeypatch):
    cal = calibration_file(tmp_path / "sim_arm.json")
    prompts: list[str] = []

    def press_enter(prompt: str = "") -> str:  # the user keeps the calibration file
        prompts.append(prompt)
        return ""

    monkeypatch.setattr("builtins.input", press_enter)
    config = so_follower.SO101FollowerConfig(
        port=sim_bus.path, id="sim_arm", calibration_dir=tmp_path, use_degrees=True
    )
    robot = so_follower.SO101Follower(config)
    try:
        robot.connect(calibrate=True)  # a fresh arm is not calibrated: LeRobot asks once, then writes the file
        assert len(prompts) == 1 and "calibration file" in prompts[0]
        assert robot.is_connected and robot.is_calibrated

        for n in NAMES:
            s = sim_bus.servo(IDS[n])
            assert s.read_register("Homing_Offset") == cal[n]["homing_offset"]
            assert s.read_register("Min_Position_Limit") == cal[n]["range_min"]
            assert s.read_register("Max_Position_Limit") == cal[n]["range_max"]
            assert s.read_register("Return_Delay_Time") == 0
            assert s.read_register("Acceleration") == 254
            assert s.read_register("Operating_Mode") == 0
            assert (s.read_register("P_Coefficient"), s.read_register("I_Coefficient")) == (16, 0)
            assert s.read_register("D_Coefficient") == 32
            assert (s.read_register("Torque_Enable"), s.read_register("Lock")) == (1, 1)
            gripper = n == "gripper"
            assert s.read_register("Max_Torque_Limit") == (500 if gripper else 1000)
            assert s.read_register("Protection_Current") == (250 if gripper else 511)
            assert s.read_register("Overload_Torque") == (25 if gripper else 80)

        obs = robot.get_observation()
        assert set(obs) == {f"{n}.pos" for n in NAMES}
        # the horns sit where the calibration put mid-range: 0 degrees (wrist_roll's mid is 2047.5), gripper 9.8 %
        for n in NAMES[:5]:
            assert obs[f"{n}.pos"] == pytest.approx(0.0, abs=0.1)
        assert obs["gripper.pos"] == pytest.approx(100 * (2047 - 1900) / 1500)

        action = {"shoulder_pan.pos": 30.0, "shoulder_lift.pos": -20.0, "elbow_flex.pos": 10.0}
        action |= {"wrist_flex.pos": 0.0, "wrist_roll.pos": 45.0, "gripper.pos": 50.0}
        assert robot.send_action(action) == action
        raw = {n: int(action[f"{n}.pos"] * 4095 / 360 + 2047) for n in NAMES[:4]}  # LeRobot's DEGREES inverse
        raw["wrist_roll"] = int(45.0 * 4095 / 360 + 2047.5)
        raw["gripper"] = int(0.5 * 1500 + 1900)
        goal_regs = poll(lambda: {n: reg(sim_bus, n, "Goal_Position") for n in NAMES}, raw.__eq__)  # no reply
        assert goal_regs == raw

        def arrived(_obs) -> bool:  # every servo within 3 steps of its goal (the P controller's dead band)
            return all(abs(reg(sim_bus, n, "Present_Position") - raw[n]) <= 3 for n in NAMES)

        def observe():  # one retry after a reply timeout, as LeRobot's own sync_read(num_retry=...) would
            try:
                return robot.get_observation()
            except ConnectionError:
                return robot.get_observation()

        obs = poll(observe, arrived)
        assert arrived(obs), [(reg(sim_bus, n, "Present_Position"), raw[n]) for n in NAMES]
        obs = robot.get_observation()
        assert all(abs(obs[k] - v) < 0.5 for k, v in action.items()), obs
    finally:
        if robot.is_connected:
            robot.disconnect()
    for n in NAMES:
        s = sim_bus.servo(IDS[n])
        assert (s.read_register("Torque_Enable"), s.read_register("Lock")) == (0, 0)

    # Reconnecting: the servos now hold the file's calibration, so LeRobot asks nothing.
    def no_prompt(prompt: str = "") -> str:
        raise AssertionError(f"LeRobot asked {prompt!r}")

    monkeypatch.setattr("builtins.input", no_prompt)
    config = so_follower.SO101FollowerConfig(
        port=sim_bus.path, id="sim_arm", calibration_dir=tmp_path, use_degrees=True, max_relative_target=5.0
    )
    robot = so_follower.SO101Follower(config)
    try:
        robot.connect(calibrate=True)
        present = robot.get_observation()["shoulder_pan.pos"]
        sent = robot.send_action({"shoulder_pan.pos": present + 30.0})  # clipped to 5 degrees from where it is
        assert sent["shoulder_pan.pos"] == pytest.approx(present + 5.0)
    finally:
        if robot.is_connected:
            robot.disconnect()
