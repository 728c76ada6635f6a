"""Language-conditioned tabletop tasks on the SO-101 scene: a registry of tasks, randomised resets, success checks.

A task (``touch``, ``pick``, ``place``) is a template over the cube colour. One episode of it is a ``TaskSpec``: the
task, the colour, the instruction string the policy sees, and the seed that lays out the scene. The instruction is
only text for the policy; the spec carries the truth (task and colour), so nothing ever parses the instruction.

```python
import mujoco, numpy as np
from sim import tasks
from sim.twin import world

model = world.load_model()
data = mujoco.MjData(model)
spec = tasks.sample_task(np.random.default_rng(0), tasks=("pick",))
spec.reset(model, data)          # arm at `home`, cubes laid out from spec.seed
...                              # run a policy / the scripted expert
spec.success(model, data)        # -> bool
```

Phrasings: every task has TRAINING phrasings (``Task.train_templates``, what demonstrations and training use) and a
few HELD-OUT rephrasings (``Task.held_out_templates``) that no training data should contain, kept for generalisation
tests (``sample_task(..., split="held_out")``).

Success is an instantaneous predicate of the world state. ``Task.success_hold_s`` says how long it must hold without
a break before an episode counts as solved (``pick`` must be *held*, not tossed); ``onboard/eval/expert.py`` applies it,
and environments built on these tasks should too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

COLORS = ("red", "green", "blue")
CUBE_HALF = 0.0125  # m (25 mm cubes, scene.xml)
TABLE_Z = 0.0  # the table top
PAN_AXIS_XY = (0.0388353, 0.0)  # the shoulder_pan axis (hardware.md §4.1): the workspace is laid out around it

# The tray (scene.xml body `box`): 90 x 90 mm outside, 3 mm walls 30 mm high, 3 mm floor.
BOX_HALF_OUTER = 0.045
BOX_HALF_INNER = 0.042
BOX_WALL_TOP = 0.030
BOX_FLOOR_TOP = 0.003

# Arm bodies that count as "the gripper" for touching, holding and releasing.
GRIPPER_BODIES = ("gripper", "moving_jaw_so101_v1")
FIXED_JAW_BODY = "gripper"
MOVING_JAW_BODY = "moving_jaw_so101_v1"

# Success thresholds.
LIFT_HEIGHT = 0.05  # pick: the cube's bottom at least this far above the table
REST_LIN_SPEED = 0.03  # m/s: place: "resting"
REST_ANG_SPEED = 1.0  # rad/s


def cube_body(color: str) -> str:
    """Body (and free-joint, and geom) name of the ``color`` cube in scene.xml."""
    if color not in COLORS:
        raise ValueError(f"unknown cube colour {color!r}; the scene has {COLORS}")
    return f"{color}_cube"


# ---------------------------------------------------------------------------------------------------------------------
# World-state helpers (shared by the success checks, the scripted expert and tests)


def cube_pose(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> tuple[np.ndarray, np.ndarray]:
    """World position (m) and orientation quaternion (w, x, y, z) of the ``color`` cube, from ``data.qpos``."""
    adr = model.jnt_qposadr[model.joint(cube_body(color)).id]
    return data.qpos[adr : adr + 3].copy(), data.qpos[adr + 3 : adr + 7].copy()


def cube_velocity(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> tuple[np.ndarray, np.ndarray]:
    """Linear (m/s, world frame) and angular (rad/s, body frame) velocity of the ``color`` cube."""
    adr = model.jnt_dofadr[model.joint(cube_body(color)).id]
    return data.qvel[adr : adr + 3].copy(), data.qvel[adr + 3 : adr + 6].copy()


def quat_yaw(quat: np.ndarray) -> float:
    """Heading (rad) of a body's local x axis projected on the table plane."""
    w, x, y, z = quat
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def box_center(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """World position of the tray's body origin (centre of its footprint, on the table)."""
    return data.xpos[model.body("box").id].copy()


def contact_bodies(model: mujoco.MjModel, data: mujoco.MjData, body: str) -> set[str]:
    """Names of the bodies touching ``body`` (any geom pair in ``data.contact``, as of the last forward pass)."""
    bid = model.body(body).id
    found: set[str] = set()
    for i in range(data.ncon):
        c = data.contact[i]
        b1, b2 = model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]
        if b1 == bid and b2 != bid:
            found.add(model.body(b2).name)
        elif b2 == bid and b1 != bid:
            found.add(model.body(b1).name)
    return found


def is_touching(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    """The gripper (either jaw) touches the ``color`` cube."""
    return bool(contact_bodies(model, data, cube_body(color)) & set(GRIPPER_BODIES))


def is_held(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    """Both jaws touch the ``color`` cube (squeezed between them)."""
    touching = contact_bodies(model, data, cube_body(color))
    return FIXED_JAW_BODY in touching and MOVING_JAW_BODY in touching


def is_lifted(model: mujoco.MjModel, data: mujoco.MjData, color: str, height: float = LIFT_HEIGHT) -> bool:
    """The ``color`` cube's bottom is at least ``height`` above the table (its centre ``height + 12.5 mm``)."""
    pos, _ = cube_pose(model, data, color)
    return pos[2] >= TABLE_Z + CUBE_HALF + height


def is_in_box(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    """The ``color`` cube's centre is inside the tray's inner footprint and below the top of its walls."""
    pos, _ = cube_pose(model, data, color)
    c = box_center(model, data)
    inside = abs(pos[0] - c[0]) < BOX_HALF_INNER and abs(pos[1] - c[1]) < BOX_HALF_INNER
    return bool(inside and pos[2] < c[2] + BOX_WALL_TOP + CUBE_HALF)


def is_resting(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    lin, ang = cube_velocity(model, data, color)
    return bool(np.linalg.norm(lin) < REST_LIN_SPEED and np.linalg.norm(ang) < REST_ANG_SPEED)


def success_touch(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    return is_touching(model, data, color)


def success_pick(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    return is_lifted(model, data, color) and is_held(model, data, color)


def success_place(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    return is_in_box(model, data, color) and is_resting(model, data, color) and not is_touching(model, data, color)


# ---------------------------------------------------------------------------------------------------------------------
# Scene layout and reset


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


# ---------------------------------------------------------------------------------------------------------------------
# Tasks and the registry


@dataclass(frozen=True)
class Task:
    """One kind of task. Templates contain ``{color}``."""

    name: str
    description: str
    train_templates: tuple[str, ...]
    held_out_templates: tuple[str, ...]
    check: Callable[[mujoco.MjModel, mujoco.MjData, str], bool] = field(repr=False)
    max_duration_s: float
    success_hold_s: float = 0.0

    def __post_init__(self) -> None:
        every = self.train_templates + self.held_out_templates
        if len(self.train_templates) < 4:
            raise ValueError(f"task {self.name!r}: give at least 4 training phrasings")
        if not self.held_out_templates:
            raise ValueError(f"task {self.name!r}: give at least one held-out phrasing")
        if len(set(every)) != len(every):
            raise ValueError(f"task {self.name!r}: phrasings must be distinct (train and held-out together)")
        for t in every:
            if "{color}" not in t:
                raise ValueError(f"task {self.name!r}: phrasing {t!r} has no {{color}} placeholder")

    def instructions(self, color: str, split: str = "train") -> list[str]:
        """Every instruction of this task for ``color`` in ``split`` ("train" or "held_out")."""
        cube_body(color)  # validates
        return [t.format(color=color) for t in self.templates(split)]

    def templates(self, split: str = "train") -> tuple[str, ...]:
        if split == "train":
            return self.train_templates
        if split == "held_out":
            return self.held_out_templates
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")

    def reset(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        rng: np.random.Generator,
        config: LayoutConfig = DEFAULT_LAYOUT,
    ) -> Layout:
        """Randomise the scene for an episode of this task (all tasks share one layout distribution)."""
        return reset_scene(model, data, rng, config)

    def success(self, model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
        return bool(self.check(model, data, color))


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}") from None


register_task(
    Task(
        name="touch",
        description="touch the cube with the gripper",
        train_templates=(
            "touch the {color} cube",
            "tap the {color} block",
            "reach out and touch the {color} cube",
            "put the gripper on the {color} cube",
            "poke the {color} block",
        ),
        held_out_templates=(
            "make contact with the {color} block",
            "go and touch the cube that is {color}",
        ),
        check=success_touch,
        max_duration_s=8.0,
    )
)
register_task(
    Task(
        name="pick",
        description="lift the cube at least 5 cm above the table and hold it",
        train_templates=(
            "pick up the {color} cube",
            "grab the {color} block and lift it",
            "lift the {color} cube",
            "pick the {color} block up",
            "raise the {color} cube off the table",
        ),
        held_out_templates=(
            "take the {color} cube and hold it up in the air",
            "get the {color} block off the table",
        ),
        check=success_pick,
        max_duration_s=10.0,
        success_hold_s=0.5,
    )
)
register_task(
    Task(
        name="place",
        description="put the cube in the tray and let go",
        train_templates=(
            "put the {color} cube in the box",
            "place the {color} block in the tray",
            "move the {color} cube into the box",
            "drop the {color} block into the tray",
            "pick up the {color} cube and put it in the box",
        ),
        held_out_templates=(
            "store the {color} block in the container",
            "the {color} cube belongs in the tray, put it there",
        ),
        check=success_place,
        max_duration_s=15.0,
        success_hold_s=0.2,
    )
)


# ---------------------------------------------------------------------------------------------------------------------
# Episodes


@dataclass(frozen=True)
class TaskSpec:
    """One episode: what to do (``task``, ``color``: the truth), what the policy is told (``instruction``), and the
    seed of the scene layout. ``split`` records which phrasing list the instruction came from."""

    task: str
    color: str
    instruction: str
    seed: int
    split: str = "train"

    def __post_init__(self) -> None:
        get_task(self.task)
        cube_body(self.color)
        if self.split not in ("train", "held_out"):
            raise ValueError(f"split must be 'train' or 'held_out', got {self.split!r}")

    @property
    def definition(self) -> Task:
        return get_task(self.task)

    @property
    def max_duration_s(self) -> float:
        return self.definition.max_duration_s

    @property
    def success_hold_s(self) -> float:
        return self.definition.success_hold_s

    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, config: LayoutConfig = DEFAULT_LAYOUT) -> Layout:
        """Lay the scene out from ``seed`` (deterministic) with the arm at ``home``."""
        return self.definition.reset(model, data, np.random.default_rng(self.seed), config)

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        return self.definition.success(model, data, self.color)


Episode = TaskSpec


def paraphrase_groups(split: str = "train") -> tuple[tuple[str, ...], ...]:
    """Interchangeable instructions, one group per (task, colour): the ``split`` phrasings of that task for that
    colour (``policies.augment``'s ``paraphrases``; only the training phrasings, so that the held-out ones stay
    unseen)."""
    return tuple(tuple(TASKS[name].instructions(color, split)) for name in sorted(TASKS) for color in COLORS)


def make_spec(task: str, color: str, seed: int, instruction: str | None = None, split: str = "train") -> TaskSpec:
    """A spec with a given instruction, or the first phrasing of ``split`` when ``instruction`` is None."""
    if instruction is None:
        instruction = get_task(task).instructions(color, split)[0]
    return TaskSpec(task=task, color=color, instruction=instruction, seed=int(seed), split=split)


def sample_task(
    rng: np.random.Generator,
    tasks: Iterable[str] | None = None,
    colors: Iterable[str] = COLORS,
    split: str = "train",
) -> TaskSpec:
    """A random episode: task, colour and phrasing uniformly from the given ones, and a fresh layout seed."""
    names = sorted(TASKS) if tasks is None else list(tasks)
    cols = list(colors)
    if not names or not cols:
        raise ValueError("sample_task needs at least one task and one colour")
    task = get_task(names[int(rng.integers(len(names)))])
    color = cols[int(rng.integers(len(cols)))]
    options = task.instructions(color, split)
    instruction = options[int(rng.integers(len(options)))]
    return TaskSpec(
        task=task.name, color=color, instruction=instruction, seed=int(rng.integers(2**31 - 1)), split=split
    )


PLACE_WORDS = ("box", "tray", "bin", "basket", "container")
TOUCH_WORDS = ("touch", "tap", "poke", "reach", "contact")


def judge_instruction(instruction: str, task: str | None = None, color: str | None = None) -> tuple[str, str]:
    """(task, colour) that the simulator judges success by, from keywords of the instruction: a box/tray/bin/basket/
    container word means place, touch/tap/poke/reach/contact means touch, anything else pick; the colour is the first
    one named (red by default). A task or colour given explicitly wins; an unknown one is a ValueError.

    >>> judge_instruction("pick up the green cube and put it in the box")
    ('place', 'green')
    """
    words = re.findall(r"[a-z]+", instruction.lower())
    if task is None:
        if any(w in PLACE_WORDS or w.rstrip("s") in PLACE_WORDS or w == "boxes" for w in words):
            task = "place"
        elif any(w.startswith(TOUCH_WORDS) for w in words):  # touch, touching, tapped, reaches, ...
            task = "touch"
        else:
            task = "pick"
    if color is None:
        color = next((w for w in words if w in COLORS), "red")
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the simulator has {sorted(TASKS)}")
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; the scene has {list(COLORS)}")
    return task, color
