"""The digital twin: emulated STS3215 servos driving MuJoCo joints, the sim clock, calibration, contact and
determinism, and the arm served on a pseudo-terminal in real time. Rendered cameras: test_cameras.py; the arm in a
child process and LeRobot's own SO-101 driver on it: tests/sim/process/test_so101_process.py."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (tests/conftest.py does the same)

import math
import time

import numpy as np
import pytest

from tests.conftest import require

require("mujoco", "sim")  # skipped without MuJoCo; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

import sim  # noqa: E402, F401  (registers simbus://)
from hardware.feetech.bus import FeetechBus  # noqa: E402
from hardware.feetech.errors import ServoError, StatusBit  # noqa: E402
from robot.clock import Clock  # noqa: E402
from sim.feetech.motor import Plant  # noqa: E402
from sim.twin.joint_plant import STEPS_PER_RAD, JointPlant  # noqa: E402
from sim.twin.physics import RealTimeRunner, SimClock, World  # noqa: E402
from sim.twin.so101 import SimulatedSO101  # noqa: E402
from sim.twin.world import JOINT_NAMES  # noqa: E402

IDS = list(range(1, 7))
# Offsets from the calibration pose (rad) that every test move uses: clear of the table, the cubes and the tray.
MOVE = np.array([0.4, -0.3, 0.5, -0.4, 0.6, 0.5])


@pytest.fixture
def arm():
    with SimulatedSO101(seed=0) as a:
        yield a


def connect(arm: SimulatedSO101) -> FeetechBus:
    bus = FeetechBus(arm.url, names={i: n for i, n in zip(IDS, JOINT_NAMES)})
    return bus.connect()


def hold_and_enable(arm: SimulatedSO101, bus: FeetechBus) -> None:
    """A person holds the arm at the calibration pose while torque comes on, then lets go."""
    arm.hand.to_middle()
    for i in IDS:
        bus.write(i, "Torque_Enable", 1)
    arm.hand.release()


# --- world and clock ------------------------------------------------------------------------------------------------
def test_sim_clock_is_a_clock_that_steps_the_world():
    world = World()
    clock = SimClock(world)
    assert isinstance(clock, Clock)
    assert world.timestep == pytest.approx(0.002)  # 500 Hz from the XML
    clock.sleep_until(0.1)
    assert clock.now() == pytest.approx(0.1, abs=world.timestep / 2)
    clock.sleep_until(0.05)  # in the past: nothing happens
    assert clock.now() == pytest.approx(0.1, abs=world.timestep / 2)
    clock.sleep_until(0.1 + 1 / 30)  # not on the step grid: the nearest step
    assert abs(clock.now() - (0.1 + 1 / 30)) <= world.timestep / 2 + 1e-12


def test_pre_step_hooks_run_before_every_step():
    world = World("so101")
    calls = []
    hook = world.add_pre_step(lambda dt: calls.append((dt, world.time)))
    n = world.step_until(0.02)
    assert n == 10 and len(calls) == 10
    assert calls[0] == (pytest.approx(0.002), 0.0)
    world.remove_pre_step(hook)
    world.step(3)
    assert len(calls) == 10


def test_real_time_runner_follows_the_wall_clock_and_never_runs_ahead():
    world = World("so101")
    t0 = time.monotonic()
    with RealTimeRunner(world) as runner:
        time.sleep(0.2)
        assert runner.running
        elapsed = time.monotonic() - t0
        sim_t = world.time
    assert 0.0 < sim_t <= elapsed + 2 * world.timestep
    assert not runner.running
    stopped = world.time
    time.sleep(0.02)
    assert world.time == stopped


# --- plants -----------------------------------------------------------------------------------------------------------
def test_joint_plant_frames_and_protocol(arm):
    plant = arm.plants["elbow_flex"]
    assert isinstance(plant, Plant)
    assert plant.angle_to_steps(0.0) == pytest.approx(2048 + plant.horn_offset_steps)
    assert plant.steps_to_angle(plant.angle_to_steps(0.7)) == pytest.approx(0.7)
    assert plant.angle_to_steps(0.1) - plant.angle_to_steps(0.0) == pytest.approx(0.1 * STEPS_PER_RAD)
    flipped = JointPlant(World("so101"), "elbow_flex", horn_offset_steps=0.0, direction=-1)
    assert flipped.angle_to_steps(0.1) == pytest.approx(2048 - 0.1 * STEPS_PER_RAD)
    with pytest.raises(ValueError, match="no joint"):
        JointPlant(World("so101"), "knee", horn_offset_steps=0.0)


def test_torque_off_the_arm_falls_and_on_it_holds(arm):
    bus = connect(arm)
    arm.hand.to_middle()
    arm.hand.release()
    arm.clock.sleep(0.5)
    assert abs(arm.joint_angle("shoulder_lift")) > 0.2  # unpowered: gravity folds it
    assert bus.read(2, "Present_Load") == 0
    hold_and_enable(arm, bus)
    before = arm.joint_angles()
    arm.clock.sleep(0.5)
    assert np.degrees(np.abs(arm.joint_angles() - before)).max() < 0.5


def test_torque_off_and_on_between_two_steps_holds_where_the_arm_is(arm):
    """A reset moves the arm with torque off, then torque comes on, all at one instant (no physics step between):
    the servo holds the new pose, not its old goal."""
    bus = connect(arm)
    hold_and_enable(arm, bus)
    arm.clock.sleep(0.2)
    for i in IDS:
        bus.write(i, "Torque_Enable", 0)
    arm.hand.hold("elbow_flex", 0.6)
    for i in IDS:
        bus.write(i, "Torque_Enable", 1)
    arm.hand.release()
    arm.clock.sleep(0.5)
    assert math.degrees(abs(arm.joint_angle("elbow_flex") - 0.6)) < 0.5


def test_p_coefficient_scales_the_stiffness(arm):
    """Holding against gravity, the position error halves when P doubles (kp = 998.22 x P / 16)."""
    bus = connect(arm)
    sag = {}
    plant = arm.plants["shoulder_lift"]
    for p in (16, 32):
        bus.write(2, "P_Coefficient", p)
        hold_and_enable(arm, bus)
        goal = arm.reading_at("shoulder_lift", 0.3)
        bus.write(2, "Goal_Position", goal)
        arm.clock.sleep(1.0)
        sag[p] = abs(arm.joint_angle("shoulder_lift") - plant.steps_to_angle(goal))  # homing 0, no wrap: steps = goal
        for i in IDS:
            bus.write(i, "Torque_Enable", 0)
    assert sag[16] > 0
    assert sag[16] / sag[32] == pytest.approx(2.0, rel=0.25)


def test_torque_limit_caps_the_force(arm):
    """At 5 % of stall torque the shoulder cannot hold the arm up: it yields and reports its load at the limit."""
    bus = connect(arm)
    hold_and_enable(arm, bus)
    bus.write(2, "Torque_Limit", 50)
    arm.clock.sleep(0.5)
    assert abs(arm.joint_angle("shoulder_lift")) > 0.2
    assert abs(bus.read(2, "Present_Load")) == pytest.approx(50, abs=2)


# --- (a) our driver moves every joint to its goal ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 11])
def test_goal_positions_reach_the_commanded_angles(seed):
    with SimulatedSO101(seed=seed) as arm:
        bus = connect(arm)
        hold_and_enable(arm, bus)
        target = arm.calibration_pose + MOVE
        goals = {i: arm.reading_at(n, q) for i, n, q in zip(IDS, JOINT_NAMES, target)}
        bus.sync_write("Goal_Position", goals)
        arm.clock.sleep_until(arm.clock.now() + 1.0)
        error_deg = np.degrees(arm.joint_angles() - target)
        assert np.abs(error_deg).max() < 1.0, dict(zip(JOINT_NAMES, error_deg.round(3)))
        present = bus.sync_read("Present_Position", IDS)
        assert all(abs(present[i] - goals[i]) <= 3 for i in IDS), (present, goals)


# --- (b) a fresh arm is uncalibrated ----------------------------------------------------------------------------------
def test_uncalibrated_arms_read_arbitrary_positions_at_zero():
    readings = []
    for seed in (0, 1, 2):
        with SimulatedSO101(seed=seed) as arm:
            bus = connect(arm)
            for joint in JOINT_NAMES:
                arm.hand.hold(joint, 0.0)
            assert bus.sync_read("Homing_Offset", IDS) == {i: 0 for i in IDS}
            present = bus.sync_read("Present_Position", IDS)
            readings.append(tuple(present[i] for i in IDS))
            assert all(abs(p - 2048) <= 1001 for p in present.values())
            assert all(p != 2048 for p in present.values())
    assert len(set(readings)) == 3


@pytest.mark.parametrize("seed", range(40))
def test_factory_calibration_fits_the_servos(seed):
    """Mid-range homing leaves every joint's whole range inside 0..4095 (no wrap), whatever the horn offsets."""
    with SimulatedSO101(seed=seed) as arm:
        for joint, cal in arm.factory_calibration().items():
            assert cal["id"] == JOINT_NAMES.index(joint) + 1 and cal["drive_mode"] == 0
            assert abs(cal["homing_offset"]) <= 2047
            assert 0 <= cal["range_min"] < 2047 < cal["range_max"] <= 4095


def test_horn_offsets_that_would_wrap_are_refused():
    with pytest.raises(ValueError, match=r"outside 0\.\.4095"):
        SimulatedSO101(horn_offsets=[0, 0, 0, 0, 0, 2500])


def test_hand_sweep_shows_the_range_that_factory_calibration_gives(arm):
    """The guided procedure on the simulated arm: hold at the middle, set half-turn homings, sweep each joint while
    sampling the bus, and the recorded ranges are factory_calibration()'s."""
    bus = connect(arm)
    arm.hand.to_middle()
    present = bus.sync_read("Present_Position", IDS)
    for i in IDS:
        bus.write_eeprom(i, "Homing_Offset", present[i] - 2047)
    assert bus.sync_read("Present_Position", IDS) == {i: 2047 for i in IDS}
    expected = arm.factory_calibration()
    for i, joint in zip(IDS, JOINT_NAMES):
        lo = hi = bus.read(i, "Present_Position")
        for _ in arm.hand.sweep(joint):
            arm.clock.sleep(0.01)
            p = bus.read(i, "Present_Position")
            lo, hi = min(lo, p), max(hi, p)
        assert bus.read(i, "Homing_Offset") == expected[joint]["homing_offset"]
        if joint != "wrist_roll":
            assert (lo, hi) == (expected[joint]["range_min"], expected[joint]["range_max"])
        assert arm.joint_angle(joint) == pytest.approx(arm.calibration_pose[i - 1])  # back where it started


def test_install_calibration_writes_eeprom():
    with SimulatedSO101(seed=5, uncalibrated=False) as arm:
        bus = connect(arm)
        cal = arm.factory_calibration()
        for i, joint in zip(IDS, JOINT_NAMES):
            regs = bus.read_registers(i, ["Homing_Offset", "Min_Position_Limit", "Max_Position_Limit"])
            assert regs == {
                "Homing_Offset": cal[joint]["homing_offset"],
                "Min_Position_Limit": cal[joint]["range_min"],
                "Max_Position_Limit": cal[joint]["range_max"],
            }
        arm.bus.power_cycle()
        assert bus.read(3, "Homing_Offset") == cal["elbow_flex"]["homing_offset"]
        arm.hand.to_middle()
        assert bus.sync_read("Present_Position", IDS) == {i: 2047 for i in IDS}


# --- (c) pushing into the table ---------------------------------------------------------------------------------------
def test_pushing_into_the_table_overloads_and_the_servo_lets_go(arm):
    bus = connect(arm)
    hold_and_enable(arm, bus)
    # shoulder_lift 0.5, elbow_flex 1.3 put the tool point ~9 cm under the table top: the jaws land on the table.
    bus.write(2, "Goal_Position", arm.reading_at("shoulder_lift", 0.5))
    bus.write(3, "Goal_Position", arm.reading_at("elbow_flex", 1.3))
    protection_s = bus.read(2, "Protection_Time") * 0.01
    assert protection_s == pytest.approx(2.0)
    t0 = arm.clock.now()
    temp0 = bus.read(2, "Present_Temperature")
    loads, temps, error = [], [], None
    while arm.clock.now() < t0 + protection_s + 1.0:
        arm.clock.sleep(0.02)
        try:
            regs = {i: bus.read_registers(i, ["Present_Load", "Present_Temperature"]) for i in (2, 3)}
        except ServoError as exc:
            error = exc
            break
        loads.append(max(abs(r["Present_Load"]) for r in regs.values()))
        temps.append(max(r["Present_Temperature"] for r in regs.values()))
    tripped_after = arm.clock.now() - t0
    assert error is not None, "the overload protection never tripped"
    assert error.servo_id in (2, 3)
    assert StatusBit.OVERLOAD in error.bits
    assert protection_s <= tripped_after <= protection_s + 0.5
    assert max(loads[-10:]) >= 950  # stalled at (nearly) full torque
    assert max(temps) > temp0  # sustained load heats the motor
    assert bus.read(error.servo_id, "Torque_Enable", check_status=False) == 0
    assert bus.read(error.servo_id, "Status", check_status=False) & StatusBit.OVERLOAD


def test_the_jaws_touch_the_table_when_pushing(arm):
    bus = connect(arm)
    hold_and_enable(arm, bus)
    bus.write(2, "Goal_Position", arm.reading_at("shoulder_lift", 0.5))
    bus.write(3, "Goal_Position", arm.reading_at("elbow_flex", 1.3))
    arm.clock.sleep(1.0)
    m, d = arm.world.model, arm.world.data
    touching = {frozenset((m.geom(c.geom1).name, m.geom(c.geom2).name)) for c in d.contact[: d.ncon] if c.dist < 1e-3}
    assert any("table" in pair and any("jaw" in g for g in pair) for pair in touching), touching
    assert bus.read(2, "Present_Load") >= 950 or bus.read(3, "Present_Load") >= 950


# --- (d) determinism --------------------------------------------------------------------------------------------------
def run_script(seed: int) -> tuple[np.ndarray, list]:
    with SimulatedSO101(seed=seed) as arm:
        bus = connect(arm)
        hold_and_enable(arm, bus)
        trajectory, readings = [], []
        for k in range(60):  # 2 s at 30 Hz, a new goal every 0.5 s
            if k % 15 == 0:
                sign = 1 if (k // 15) % 2 == 0 else -1
                target = arm.calibration_pose + sign * MOVE * 0.8
                bus.sync_write("Goal_Position", {i: arm.reading_at(n, q) for i, n, q in zip(IDS, JOINT_NAMES, target)})
            arm.clock.sleep_until((k + 1) / 30)
            readings.append(bus.sync_read("Present_Position", IDS))
            trajectory.append(arm.joint_angles())
        return np.array(trajectory), readings


def test_same_seed_same_commands_same_trajectory():
    a, ra = run_script(3)
    b, rb = run_script(3)
    assert np.array_equal(a, b)
    assert ra == rb
    assert np.abs(np.diff(a, axis=0)).max() > 0.01  # it did move


def test_world_reset_keeps_time_and_the_servos_see_it(arm):
    bus = connect(arm)
    hold_and_enable(arm, bus)
    goal = arm.reading_at("elbow_flex", 0.5)
    bus.write(3, "Goal_Position", goal)
    arm.clock.sleep(1.0)
    t = arm.clock.now()
    arm.world.reset()  # back to the home keyframe: elbow at 0
    assert arm.clock.now() == t
    assert arm.joint_angle("elbow_flex") == 0.0
    assert bus.read(3, "Present_Position") == arm.reading_at("elbow_flex", 0.0)  # at once, no time passed
    arm.clock.sleep(1.0)  # torque is still on: the servo pulls the joint back to its goal
    assert abs(bus.read(3, "Present_Position") - goal) <= 2


# --- real time on a pty ----------------------------------------------------------------------------------------------
def test_real_time_arm_on_a_pty_in_process(arm):
    """serve_pty + RealTimeRunner in this process, our driver on the pty device in wall time."""
    server = arm.serve_pty(wire_time=True)
    arm.hand.to_middle()
    with RealTimeRunner(arm.world), FeetechBus(server.path) as bus:
        for i in IDS:
            bus.write(i, "Torque_Enable", 1)
        arm.hand.release()
        goal = arm.reading_at("wrist_flex", -0.4)
        bus.write(4, "Goal_Position", goal)
        deadline = time.monotonic() + 5.0
        while abs(bus.read(4, "Present_Position") - goal) > 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert abs(math.degrees(arm.joint_angle("wrist_flex") + 0.4)) < 1.0
        assert arm.world.time > 0.1
