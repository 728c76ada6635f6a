"""The simulated SO-101 world: model loading, joint addressing and fast offscreen rendering.

``MUJOCO_GL`` must be chosen before ``mujoco`` is first imported, so this module sets it to ``egl`` (headless Mesa
rendering on the CPU, or a GPU's EGL where there is one) unless the caller already set it (``osmesa`` and ``glfw``
are the alternatives). Import ``sim.twin.world`` before anything else that imports ``mujoco`` for the default to apply.

Software rendering is only fast with shadows and reflections off and no multisampling
(``shared/reference/measured-here.md``): ``make_fast_renderer`` and ``render`` do exactly that.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path

import mujoco
import numpy as np

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "so101"

# Actuated joints in LeRobot's SO-101 order (also the actuator order in so101.xml).
JOINT_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")

GRIPPER_SITE = "gripperframe"


def scene_path(scene: str = "scene") -> Path:
    """Path of ``<scene>.xml`` in the SO-101 asset folder (``"scene"``: arm on a table, ``"so101"``: arm alone)."""
    path = ASSETS_DIR / f"{scene}.xml"
    if not path.is_file():
        available = sorted(p.stem for p in ASSETS_DIR.glob("*.xml"))
        raise FileNotFoundError(f"no scene {scene!r} in {ASSETS_DIR}; available: {available}")
    return path


def load_model(scene: str = "scene") -> mujoco.MjModel:
    """Compile ``sim/assets/so101/<scene>.xml`` into a fresh ``MjModel``."""
    return mujoco.MjModel.from_xml_path(str(scene_path(scene)))


def joint_qpos_addresses(model: mujoco.MjModel) -> np.ndarray:
    """Indices into ``data.qpos`` of the six arm joints, in ``JOINT_NAMES`` order (int array, shape (6,))."""
    return np.array([model.jnt_qposadr[model.joint(name).id] for name in JOINT_NAMES], dtype=np.intp)


def joint_dof_addresses(model: mujoco.MjModel) -> np.ndarray:
    """Indices into ``data.qvel`` of the six arm joints, in ``JOINT_NAMES`` order (int array, shape (6,))."""
    return np.array([model.jnt_dofadr[model.joint(name).id] for name in JOINT_NAMES], dtype=np.intp)


def gripper_site_pos(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """World position (m) of the ``gripperframe`` site (the tool point between the jaws) as of the last forward pass."""
    return data.site_xpos[model.site(GRIPPER_SITE).id].copy()


def make_fast_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """An offscreen renderer set up for fast software rendering: no multisampling (set on ``model``).

    Grows the model's offscreen buffer if ``height`` x ``width`` does not fit in it. Close it (``renderer.close()``)
    when done; it holds a GL context.
    """
    model.vis.quality.offsamples = 0
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except mujoco.FatalError as exc:
        raise RuntimeError(
            f"could not create an OpenGL context for offscreen rendering (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): "
            f"{exc}. MUJOCO_GL is read when mujoco is first imported: import sim.twin.world before anything that "
            "imports mujoco, or export MUJOCO_GL=egl. Headless Linux needs libegl1, libopengl0 and libgl1-mesa-dri "
            "(or MUJOCO_GL=osmesa with libosmesa6)."
        ) from exc


def render(renderer: mujoco.Renderer, data: mujoco.MjData, camera: str | int) -> np.ndarray:
    """Render ``camera`` (name or id) of the current ``data`` with shadows and reflections off.

    Returns a new uint8 array of shape (height, width, 3), RGB.
    """
    renderer.update_scene(data, camera=camera)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return renderer.render()


# Gripper joint range (rad) in so101.xml: LeRobot's RANGE_0_100 maps range_min..range_max of the calibrated gripper
# to 0 (closed) .. 100 (open); a calibration sweep of the simulated arm records the joint limits.
GRIPPER_RANGE = (-0.174533, 1.745329)


def lerobot_to_qpos(values: np.ndarray) -> np.ndarray:
    """LeRobot 0.4.4 SO-101 units (5 joints in degrees, 0 at mid-range; gripper 0..100) -> joint angles (rad) of an
    ideally calibrated arm. Real calibrations differ by up to a few steps; the mirrored stack goes through the
    servos and the actual calibration instead."""
    v = np.asarray(values, dtype=np.float64)
    q = np.deg2rad(v)
    lo, hi = GRIPPER_RANGE
    q[..., 5] = lo + v[..., 5] / 100.0 * (hi - lo)
    return q


def qpos_to_lerobot(q: np.ndarray) -> np.ndarray:
    """Inverse of ``lerobot_to_qpos``."""
    q = np.asarray(q, dtype=np.float64)
    v = np.rad2deg(q)
    lo, hi = GRIPPER_RANGE
    v[..., 5] = (q[..., 5] - lo) / (hi - lo) * 100.0
    return v
