"""Scene layout and reset: where an episode puts the cubes (and, optionally, the tray), sampled from a seed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from sim.tasks.scene import BOX_HALF_OUTER, COLORS, CUBE_HALF, PAN_AXIS_XY, TABLE_Z, cube_body


@dataclass(frozen=True)
class LayoutConfig:
    """Where ``reset`` may put things. Cubes are sampled in polar coordinates around the shoulder_pan axis, in the
    band where the arm reaches the table with its gripper pointing down (``r`` in m, azimuth in degrees, 0 = +x,
    positive toward +y), with random yaw, and kept apart from each other and from the tray by the clearances below.

    ``randomize_box`` moves the tray (its position is part of the *model*, ``model.body_pos``: the reset writes it,
    so a model shared between episodes follows the latest reset). Off by default: the tray stays where scene.xml has
    it."""

    r_range: tuple[float, float] = (0.13, 0.27)
    azimuth_deg: tuple[float, float] = (-60.0, 60.0)
    min_cube_distance: float = 0.065  # centre to centre: room for the open jaws between cubes
    box_clearance: float = 0.035  # from a cube's centre's square footprint to the tray's outer walls
    randomize_box: bool = False
    box_r_range: tuple[float, float] = (0.18, 0.25)
    box_azimuth_deg: tuple[float, float] = (25.0, 55.0)
    box_mirror: bool = True  # randomize_box: also allow the tray on the -y side (azimuth negated)

    def __post_init__(self) -> None:
        if not (0 < self.r_range[0] < self.r_range[1]):
            raise ValueError(f"r_range must be 0 < min < max, got {self.r_range}")
        if not (self.azimuth_deg[0] < self.azimuth_deg[1]):
            raise ValueError(f"azimuth_deg must be (min, max) with min < max, got {self.azimuth_deg}")
        if self.min_cube_distance < 2 * CUBE_HALF * math.sqrt(2):
            raise ValueError(
                f"min_cube_distance {self.min_cube_distance} m lets cubes overlap; use at least "
                f"{2 * CUBE_HALF * math.sqrt(2):.4f} m (two 25 mm cubes' circumscribed circles)"
            )


DEFAULT_LAYOUT = LayoutConfig()


@dataclass(frozen=True)
class Layout:
    """A sampled scene: per colour (x, y, yaw) of the cube on the table, and the tray's (x, y)."""

    cubes: dict[str, tuple[float, float, float]]
    box_xy: tuple[float, float]


def _polar(rng: np.random.Generator, r_range, az_range_deg) -> tuple[float, float]:
    # Uniform over the annulus sector's area.
    r = math.sqrt(rng.uniform(r_range[0] ** 2, r_range[1] ** 2))
    az = math.radians(rng.uniform(*az_range_deg))
    return PAN_AXIS_XY[0] + r * math.cos(az), PAN_AXIS_XY[1] + r * math.sin(az)


def sample_layout(
    rng: np.random.Generator, config: LayoutConfig = DEFAULT_LAYOUT, box_xy: Sequence[float] | None = None
) -> Layout:
    """Sample cube poses (and the tray's position when ``config.randomize_box``; else ``box_xy``, required then)."""
    if config.randomize_box:
        bx, by = _polar(rng, config.box_r_range, config.box_azimuth_deg)
        if config.box_mirror and rng.random() < 0.5:
            by = -by
    else:
        if box_xy is None:
            raise ValueError("sample_layout needs box_xy when config.randomize_box is False")
        bx, by = float(box_xy[0]), float(box_xy[1])
    box_reach = BOX_HALF_OUTER + config.box_clearance
    cubes: dict[str, tuple[float, float, float]] = {}
    for color in COLORS:
        for _ in range(10_000):
            x, y = _polar(rng, config.r_range, config.azimuth_deg)
            if abs(x - bx) < box_reach and abs(y - by) < box_reach:
                continue
            if any(math.hypot(x - ox, y - oy) < config.min_cube_distance for ox, oy, _ in cubes.values()):
                continue
            break
        else:  # pragma: no cover - only with a config whose band cannot hold three cubes
            raise RuntimeError(f"could not place three cubes with {config}; widen r_range/azimuth_deg")
        cubes[color] = (x, y, float(rng.uniform(-math.pi / 4, math.pi / 4)))
    return Layout(cubes=cubes, box_xy=(bx, by))


def apply_layout(model: mujoco.MjModel, data: mujoco.MjData, layout: Layout) -> None:
    """Put the cubes (resting flat on the table, at rest) and, if it moved, the tray where ``layout`` says."""
    box = model.body("box").id
    model.body_pos[box, :2] = layout.box_xy
    for color, (x, y, yaw) in layout.cubes.items():
        jid = model.joint(cube_body(color)).id
        qadr, dadr = model.jnt_qposadr[jid], model.jnt_dofadr[jid]
        data.qpos[qadr : qadr + 3] = (x, y, TABLE_Z + CUBE_HALF)
        data.qpos[qadr + 3 : qadr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        data.qvel[dadr : dadr + 6] = 0.0


def reset_scene(
    model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator, config: LayoutConfig = DEFAULT_LAYOUT
) -> Layout:
    """Arm to the ``home`` keyframe (ctrl too), cubes laid out from ``rng``; ``data`` forwarded. Returns the layout.

    Deterministic: the same ``rng`` state gives the same layout (and the same ``data``)."""
    mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
    box_xy = None if config.randomize_box else tuple(model.body_pos[model.body("box").id, :2])
    layout = sample_layout(rng, config, box_xy=box_xy)
    apply_layout(model, data, layout)
    mujoco.mj_forward(model, data)
    return layout
