"""The served rig (`onboard sim serve`'s devices): our driver on the ptys, time on the world's clock.

The pty servers answer whatever the world's time is; the tests step the world themselves (``arm.clock``), so the
person's sweep and the leader's expert advance exactly as far as the test says.
"""

from __future__ import annotations

import numpy as np
import pytest

from hardware.feetech.bus import FeetechBus
from robot.calibration import Calibrator
from sim import tasks as T
from sim.rigs.follower import scene_spec
from sim.rigs.served import ServedRig
from sim.twin.served_person import PAUSE_S, ServedPerson
from sim.twin.so101 import SimulatedSO101
from sim.twin.world import JOINT_NAMES, qpos_to_lerobot
from tests.conftest import require
from tests.simarm import wait_until

mujoco = require("mujoco", "sim")

IDS = {name: i for i, name in enumerate(JOINT_NAMES, start=1)}


def calibrate(path: str, arm: SimulatedSO101, person: ServedPerson) -> dict[str, tuple[int, int, int]]:
    """onboard's calibration flow (robot.calibration.Calibrator) on the pty, nobody touching the arm but the served
    person; the world advances 20 ms between range samples. Returns name -> (homing, min, max)."""
    with FeetechBus(path) as bus:
        calibrator = Calibrator(bus, IDS)
        calibrator.start()
        assert person.state == "middle"  # the reset was noticed: the arm is held at the middle
        calibrator.set_homing()
        assert person.state == "sweeping"
        samples = 0
        while not person.swept.is_set():
            arm.clock.sleep(0.02)
            calibrator.sample_range()
            samples += 1
        assert samples * 0.02 == pytest.approx(person.sweep_s, abs=0.05)
        cal = calibrator.finish()
    assert person.state == "idle" and person.calibrations == 1
    return {n: (c.homing_offset, c.range_min, c.range_max) for n, c in cal.items()}


def factory(arm: SimulatedSO101) -> dict[str, tuple[int, int, int]]:
    return {n: (c["homing_offset"], c["range_min"], c["range_max"]) for n, c in arm.factory_calibration().items()}


def test_the_served_person_calibrates_a_new_arm_through_the_pty():
    arm = SimulatedSO101(seed=5)
    with ServedRig(arm) as rig:
        assert rig.leader_path is None
        before = [arm.servos[j].read_register("Homing_Offset") for j in JOINT_NAMES]
        assert before == [0] * 6  # a new kit
        got = calibrate(rig.follower_path, arm, rig.follower_person)
    assert got == factory(arm)  # the same calibration as the guided procedure's, to the step
    assert not arm.hand.holding  # let go once the calibration was written


def test_the_sweep_reaches_both_stops_and_pauses_there():
    arm = SimulatedSO101(seed=1)
    with ServedRig(arm, sweep_s=3.0) as rig:
        person = rig.follower_person
        lo = np.array([arm.joint_range(j)[0] for j in JOINT_NAMES])
        hi = np.array([arm.joint_range(j)[1] for j in JOINT_NAMES])
        move = (3.0 - 2 * PAUSE_S) / 4
        swept = [j != "wrist_roll" for j in JOINT_NAMES]
        for s in (move, move + PAUSE_S):
            np.testing.assert_allclose(person.sweep_angles(s)[swept], lo[swept])
        for s in (3 * move + PAUSE_S, 3 * move + 2 * PAUSE_S):
            np.testing.assert_allclose(person.sweep_angles(s)[swept], hi[swept])
        np.testing.assert_allclose(person.sweep_angles(3.0), arm.calibration_pose)
        assert person.sweep_angles(1.0)[JOINT_NAMES.index("wrist_roll")] == arm.calibration_pose[4]


def test_a_calibrated_arm_connecting_leaves_the_person_idle():
    """Writing a finished calibration (what LeRobot does with its file) is not a calibration starting."""
    arm = SimulatedSO101(seed=2, uncalibrated=False)
    cal = arm.factory_calibration()
    with ServedRig(arm) as rig, FeetechBus(rig.follower_path) as bus:
        for c in cal.values():
            bus.write(c["id"], "Homing_Offset", c["homing_offset"])
            bus.write(c["id"], "Min_Position_Limit", c["range_min"])
            bus.write(c["id"], "Max_Position_Limit", c["range_max"])
        assert rig.follower_person.state == "idle" and not arm.hand.holding


def goals(bus: FeetechBus, arm: SimulatedSO101) -> None:
    """A teleoperation tick: the follower's goals = where it is (torque on); then a read, so that the pty server
    has taken the (unanswered) write before the test steps the world."""
    present = bus.sync_read("Present_Position", list(IDS.values()))
    bus.sync_write("Goal_Position", present)
    bus.read(1, "Torque_Enable")


def test_the_leader_follows_the_expert_while_a_client_teleoperates():
    arm = SimulatedSO101(seed=0, uncalibrated=False)
    spec = scene_spec(0, "pick", "red")
    with ServedRig(arm, leader=True, spec=spec, leader_calibrated=True, session_gap_s=0.5, threaded=False) as rig:
        leader = rig.leader
        home = leader.joints_lerobot()
        with FeetechBus(rig.leader_path) as lb:  # the leader reads as a calibrated leader, at the calibration pose
            assert lb.read(1, "Torque_Enable") == 0
            assert lb.sync_read("Present_Position", [1, 2, 3]) == {1: 2047, 2: 2047, 3: 2047}
        arm.clock.sleep(1.0)
        np.testing.assert_allclose(leader.joints_lerobot(), home)  # nobody teleoperates: the leader rests
        with FeetechBus(rig.follower_path) as fb:
            for i in IDS.values():
                fb.write(i, "Torque_Enable", 1)
            for _ in range(30):  # one second of teleoperation at 30 Hz
                goals(fb, arm)
                arm.clock.sleep(1 / 30)
            assert rig.sessions == 1 and leader.spec == spec
            moved = np.abs(leader.joints_lerobot() - home).max()
            assert moved > 5  # degrees: the expert is on its way to the red cube
            arm.clock.sleep(1.0)  # a pause; then someone moves the red cube; the next goals start a second session
            model, data = arm.world.model, arm.world.data
            cube_q = model.jnt_qposadr[model.body(T.cube_body("red")).jntadr[0]]
            data.qpos[cube_q : cube_q + 2] += 0.05
            goals(fb, arm)
            arm.clock.sleep(0.01)
            assert rig.sessions == 2
            scratch = mujoco.MjData(model)
            spec.reset(model, scratch)  # where the spec's layout puts the cube
            laid = T.cube_pose(model, scratch, "red")[0]
            np.testing.assert_allclose(T.cube_pose(model, data, "red")[0], laid, atol=0.005)  # laid out again
            np.testing.assert_allclose(qpos_to_lerobot(arm.joint_angles())[:5], 0, atol=3)  # the arm back at home


def test_a_leader_replays_recorded_actions_and_calibrates_mid_session():
    arm = SimulatedSO101(seed=0, uncalibrated=False)
    t = np.arange(90) / 30
    actions = np.zeros((90, 6))
    actions[:, 0] = 30 * np.sin(t)  # shoulder_pan swings
    actions[:, 5] = 20 + 10 * t  # the gripper opens
    with ServedRig(arm, leader=True, replay=actions, replay_fps=30, threaded=False) as rig:
        leader = rig.leader
        with FeetechBus(rig.follower_path) as fb:
            goals(fb, arm)
            arm.clock.sleep(0.01)
            t0 = arm.world.time
            for k in (10, 45, 89):
                arm.clock.sleep_until(t0 + k / 30 + 0.005)
                np.testing.assert_allclose(leader.joints_lerobot()[[0, 5]], actions[k, [0, 5]], atol=0.6)
        got = calibrate(rig.leader_path, leader.sim, rig.leader_person)  # a calibration takes the leader over
        assert leader.expert is None
    assert got == factory(leader.sim)


def test_a_threaded_leader_thinks_outside_the_physics_step():
    """The served default: the expert's goals come from a thread of their own, on a snapshot of the world."""
    arm = SimulatedSO101(seed=0, uncalibrated=False)
    with ServedRig(arm, leader=True, spec=scene_spec(0, "pick", "red"), leader_calibrated=True) as rig:
        leader = rig.leader
        assert leader.threaded and leader._worker.is_alive()
        home = leader.joints_lerobot()
        with FeetechBus(rig.follower_path) as fb:
            goals(fb, arm)
            moved = False
            for _ in range(300):  # up to 10 s of simulated time, 1/30 s at a time
                arm.clock.sleep(1 / 30)
                if wait_until(lambda: np.abs(leader.joints_lerobot() - home).max() > 5, timeout=0.2):
                    moved = True
                    break
        assert moved and rig.sessions == 1
    assert leader._worker is None  # closed: the thread was joined
