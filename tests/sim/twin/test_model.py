"""The simulated SO-101 (sim/assets/so101): compiles cleanly, matches hardware.md §4, holds, tracks, renders."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (tests/conftest.py does the same)

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require

mujoco = require("mujoco", "sim")  # skipped without MuJoCo; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

from sim.twin import world  # noqa: E402

ASSET_ROOT = Path(world.__file__).resolve().parent.parent / "assets"
SCENES = sorted(p for p in ASSET_ROOT.rglob("*.xml") if "<mujoco" in p.read_text())
ARM_BODIES = ("shoulder", "upper_arm", "lower_arm", "wrist", "gripper", "moving_jaw_so101_v1")
CUBE_HALF = 0.0125


@pytest.fixture(scope="module")
def scene() -> mujoco.MjModel:
    return world.load_model("scene")


def reset(model: mujoco.MjModel, key: str = "home") -> mujoco.MjData:
    data = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, data, model.key(key).id)
    mujoco.mj_forward(model, data)
    return data


def step(model: mujoco.MjModel, data: mujoco.MjData, seconds: float) -> None:
    mujoco.mj_step(model, data, nstep=round(seconds / model.opt.timestep))


def warnings_of(data: mujoco.MjData) -> dict[str, int]:
    return {mujoco.mjtWarning(i).name: int(data.warning[i].number) for i in range(len(data.warning))}


def in_base_frame(model: mujoco.MjModel, data: mujoco.MjData, point: np.ndarray) -> np.ndarray:
    base = model.body("base").id
    return data.xmat[base].reshape(3, 3).T @ (point - data.xpos[base])


# (a) ------------------------------------------------------------------------------------------------------------------
def test_assets_are_found():
    assert {p.name for p in SCENES} >= {"so101.xml", "scene.xml"}


@pytest.mark.parametrize("path", SCENES, ids=lambda p: str(p.relative_to(ASSET_ROOT)))
def test_every_scene_compiles_and_steps_without_warnings(path: Path):
    model = mujoco.MjModel.from_xml_path(str(path))
    data = reset(model, "home")
    for _ in range(1000):
        mujoco.mj_step(model, data)
    assert all(n == 0 for n in warnings_of(data).values()), warnings_of(data)
    assert np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))


def test_scene_has_the_named_things(scene):
    for name in world.JOINT_NAMES:
        assert scene.joint(name).type == mujoco.mjtJoint.mjJNT_HINGE
        assert scene.actuator(name).trnid[0] == scene.joint(name).id
    for name in ("red_cube", "green_cube", "blue_cube"):
        assert scene.joint(name).type == mujoco.mjtJoint.mjJNT_FREE
    for name in ("front", "wrist"):
        scene.camera(name)
    scene.body("box")
    assert scene.opt.timestep == pytest.approx(0.002)
    assert scene.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert scene.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert len(world.joint_qpos_addresses(scene)) == 6


def test_joint_ranges_and_actuators_match_hardware_md(scene):
    ranges = {  # hardware.md §4.1 (SOA so101_new_calib)
        "shoulder_pan": (-1.91986, 1.91986),
        "shoulder_lift": (-1.74533, 1.74533),
        "elbow_flex": (-1.69, 1.69),
        "wrist_flex": (-1.65806, 1.65806),
        "wrist_roll": (-2.74385, 2.84121),
        "gripper": (-0.174533, 1.745329),
    }
    for name, rng in ranges.items():
        joint, act = scene.joint(name), scene.actuator(name)
        np.testing.assert_allclose(joint.range, rng, atol=1e-5)
        np.testing.assert_allclose(act.ctrlrange, rng, atol=1e-5)
        assert joint.damping[0] == pytest.approx(0.60)
        assert joint.frictionloss[0] == pytest.approx(0.052)
        assert joint.armature[0] == pytest.approx(0.028)
        assert act.gainprm[0] == pytest.approx(998.22)  # kp
        assert act.biasprm[2] == pytest.approx(-2.731)  # kv
        np.testing.assert_allclose(act.forcerange, (-2.94, 2.94))
    masses = {
        "base": 0.147,
        "shoulder": 0.100006,
        "upper_arm": 0.103,
        "lower_arm": 0.104,
        "wrist": 0.079,
        "gripper": 0.087,
        "moving_jaw_so101_v1": 0.012,
    }
    for name, mass in masses.items():
        assert scene.body(name).mass[0] == pytest.approx(mass)


# (b) ------------------------------------------------------------------------------------------------------------------
def test_forward_kinematics_at_zero_matches_hardware_md(scene):
    data = mujoco.MjData(scene)
    mujoco.mj_forward(scene, data)  # qpos0: every arm joint at 0 (middle of its range)
    assert np.all(data.qpos[world.joint_qpos_addresses(scene)] == 0)
    # hardware.md §4.1 "Derived geometry": axis points of shoulder_lift, elbow_flex, wrist_flex; all parallel to +y.
    expected_axes = {
        "shoulder_lift": (0.0692, -0.0183, 0.1166),
        "elbow_flex": (0.0972, -0.0183, 0.2292),
        "wrist_flex": (0.2321, -0.0183, 0.2344),
    }
    for name, point in expected_axes.items():
        jid = scene.joint(name).id
        np.testing.assert_allclose(in_base_frame(scene, data, data.xanchor[jid]), point, atol=0.005, err_msg=name)
        np.testing.assert_allclose(data.xaxis[jid], (0, 1, 0), atol=1e-3, err_msg=name)
    pan = scene.joint("shoulder_pan").id
    np.testing.assert_allclose(in_base_frame(scene, data, data.xanchor[pan])[:2], (0.0388, 0), atol=0.001)
    np.testing.assert_allclose(data.xaxis[pan], (0, 0, -1), atol=1e-6)  # positive pan turns the arm toward -y

    # SOA's gripper_frame (x = -0.0079 in the gripper body) is the listed "jaw tip" (0.3914, 0, 0.2265) ...
    gripper = scene.body("gripper").id
    rot = data.xmat[gripper].reshape(3, 3)
    soa_point = data.xpos[gripper] + rot @ np.array([-0.0079, -0.000218, -0.0981274])
    np.testing.assert_allclose(in_base_frame(scene, data, soa_point), (0.3914, 0, 0.2265), atol=0.005)
    # ... and our gripperframe site uses MEN-101's x = +0.012 (README.md): 0.0199 m further along the gripper's local
    # x, which at q = 0 is world +z tilted 0.0487 rad (the wrist_roll frame's rpy) toward -y: (0.3914, -0.0010, 0.2463).
    np.testing.assert_allclose(rot[:, 0], (0, -np.sin(0.0486795), np.cos(0.0486795)), atol=1e-3)
    site = in_base_frame(scene, data, world.gripper_site_pos(scene, data))
    np.testing.assert_allclose(site, (0.3914, -0.0010, 0.2463), atol=0.005)


def test_gripperframe_is_between_the_jaws(scene):
    # The tool point sits between the pads with room for a 25 mm cube centred on it: the fixed pad clears the cube
    # by a few mm (so a gripper lowered onto a cube does not land on it), and the pads meet when closed.
    data = reset(scene, "home")
    qa = world.joint_qpos_addresses(scene)
    fixed, moving = scene.geom("fixed_jaw_pad").id, scene.geom("moving_jaw_pad").id
    gripper = scene.body("gripper").id

    def in_gripper(point: np.ndarray) -> np.ndarray:
        return data.xmat[gripper].reshape(3, 3).T @ (point - data.xpos[gripper])

    def pads(q: float) -> tuple[float, float]:
        """Gripper-frame x (jaw-closing direction) of the fixed pad's face and of the moving pad's lowest corner."""
        data.qpos[qa[5]] = q
        mujoco.mj_forward(scene, data)
        fixed_face = in_gripper(data.geom_xpos[fixed])[0] + scene.geom_size[fixed][0]
        rot, half = data.geom_xmat[moving].reshape(3, 3), scene.geom_size[moving]
        corners = [data.geom_xpos[moving] + rot @ (np.array(s) * half) for s in ((-1, -1, 0), (-1, 1, 0))]
        return fixed_face, min(in_gripper(c)[0] for c in corners)

    fixed_face, moving_low = pads(-0.174533)
    assert abs(moving_low - fixed_face) < 0.002  # closed (LeRobot gripper 0): the jaws meet
    fixed_face, moving_low = pads(0.785398)  # home: half open
    site_x = in_gripper(world.gripper_site_pos(scene, data))[0]
    assert 0.002 < site_x - CUBE_HALF - fixed_face < 0.006
    assert moving_low - site_x > CUBE_HALF + 0.01


# (c) ------------------------------------------------------------------------------------------------------------------
def test_home_pose_holds_under_gravity(scene):
    data = reset(scene, "home")
    qa = world.joint_qpos_addresses(scene)
    q0 = data.qpos[qa].copy()
    np.testing.assert_allclose(data.ctrl, q0)  # the keyframe commands its own pose
    step(scene, data, 2.0)
    assert np.degrees(np.abs(data.qpos[qa] - q0)).max() < 2.0


# (d) ------------------------------------------------------------------------------------------------------------------
# Targets that keep the arm off the table and itself (the others stay at home).
TARGETS = {
    "shoulder_pan": (-1.2, 0.6, 1.5),
    "shoulder_lift": (-1.2, -0.5, 0.5),
    "elbow_flex": (-1.2, -0.5, 0.5),
    "wrist_flex": (-1.2, 0.5, 1.2),
    "wrist_roll": (-2.5, 1.0, 2.5),
    "gripper": (-0.15, 0.3, 1.6),
}


@pytest.mark.parametrize("name", world.JOINT_NAMES)
def test_position_actuator_tracks_commanded_angle(scene, name):
    qa = world.joint_qpos_addresses(scene)
    i = world.JOINT_NAMES.index(name)
    for target in TARGETS[name]:
        data = reset(scene, "home")
        data.ctrl[scene.actuator(name).id] = target
        step(scene, data, 1.0)
        err = np.degrees(data.qpos[qa[i]] - target)
        assert abs(err) < 2.0, f"{name} -> {target}: error {err:.2f} deg"
        assert np.all(np.isfinite(data.qpos))


# (e) ------------------------------------------------------------------------------------------------------------------
def test_dropped_cube_comes_to_rest_on_the_table(scene):
    data = reset(scene, "home")
    adr = scene.jnt_qposadr[scene.joint("red_cube").id]
    data.qpos[adr : adr + 3] = (0.2, 0.05, 0.10)
    data.qpos[adr + 3 : adr + 7] = (np.cos(0.15), np.sin(0.15), 0, 0)  # tilted 17 deg about x
    step(scene, data, 1.5)
    cube = scene.body("red_cube").id
    pos = data.xpos[cube]
    assert pos[2] == pytest.approx(CUBE_HALF, abs=0.001)
    assert np.hypot(pos[0] - 0.2, pos[1] - 0.05) < 0.05
    dof = scene.jnt_dofadr[scene.joint("red_cube").id]
    assert np.abs(data.qvel[dof : dof + 6]).max() < 1e-2
    table = scene.geom("table").id
    touching = {(c.geom1, c.geom2) for c in data.contact[: data.ncon]}
    assert (table, scene.geom("red_cube").id) in touching or (scene.geom("red_cube").id, table) in touching


def test_gripper_picks_up_a_cube(scene):
    # From `pregrasp_red` (tool point 50 mm over the red cube), lower the tool point to 6 mm above the table (joint
    # targets from an IK solve), close the jaws, lift back: the cube comes along and stays put for a second.
    lowered = np.array([-0.0054, -0.0640, 0.6091, 1.0257, 0.0, 0.6])
    data = reset(scene, "pregrasp_red")
    start = data.ctrl.copy()

    def ramp(target: np.ndarray, seconds: float) -> None:
        ctrl0, n = data.ctrl.copy(), round(seconds / scene.opt.timestep)
        for k in range(n):
            data.ctrl[:] = ctrl0 + min(1.0, (k + 1) / (0.8 * n)) * (target - ctrl0)
            mujoco.mj_step(scene, data)

    ramp(lowered, 1.0)
    assert np.linalg.norm(world.gripper_site_pos(scene, data) - (0.22, 0, 0.006)) < 0.003
    closed = lowered.copy()
    closed[5] = -0.174533
    ramp(closed, 1.0)
    lifted = start.copy()
    lifted[5] = -0.174533
    ramp(lifted, 1.5)
    cube = scene.body("red_cube").id
    z = data.xpos[cube][2]
    assert z > 0.05
    step(scene, data, 1.0)
    assert abs(data.xpos[cube][2] - z) < 0.002  # no slip
    assert np.linalg.norm(data.xpos[cube] - world.gripper_site_pos(scene, data)) < 0.015
    assert data.qpos[world.joint_qpos_addresses(scene)[5]] > 0.05  # held open by the cube, not closed
    assert all(n == 0 for n in warnings_of(data).values()), warnings_of(data)


# (f) ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [96, 224])
def test_cameras_render_the_scene(size):
    model = world.load_model("scene")  # make_fast_renderer edits the model's visual options
    renderer = world.make_fast_renderer(model, size, size)
    try:
        data = reset(model, "home")
        images = {cam: world.render(renderer, data, cam) for cam in ("front", "wrist")}
        for cam, img in images.items():
            assert img.shape == (size, size, 3) and img.dtype == np.uint8, cam
            assert img.reshape(-1, 3).std(axis=0).max() > 10, f"{cam} image is flat"
            assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20, f"{cam} image has too few colours"
        front = images["front"].astype(int)
        red = (front[..., 0] > 150) & (front[..., 1] < 70) & (front[..., 2] < 70)
        assert red.sum() >= max(4, size * size // 2000), "the red cube is not visible in the front camera"

        # Segmentation: which bodies each camera sees.
        renderer.enable_segmentation_rendering()
        try:
            arm = {model.body(b).id for b in ARM_BODIES}
            jaws = {model.body("gripper").id, model.body("moving_jaw_so101_v1").id}

            def pixels_of(cam: str, bodies: set[int]) -> int:
                seg = world.render(renderer, data, cam)
                geoms = seg[..., 0][seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM]
                return int(np.isin(model.geom_bodyid[geoms], list(bodies)).sum())

            assert pixels_of("front", arm) > size * size // 50, "the arm is not visible in the front camera"
            assert pixels_of("wrist", jaws) > 0, "the wrist camera does not see the jaws"
            data = reset(model, "pregrasp_red")
            assert pixels_of("wrist", {model.body("red_cube").id}) > size * size // 50
            assert pixels_of("wrist", jaws) > 0
        finally:
            renderer.disable_segmentation_rendering()
    finally:
        renderer.close()
