"""The task registry and episodes: ``Task`` (a template over the cube colour, with its training and held-out
phrasings, its success check and time limits), the three registered tasks, ``TaskSpec`` (one episode), sampling, and
the keyword judge that maps a free instruction to the (task, colour) the simulator scores."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim.tasks.layout import DEFAULT_LAYOUT, Layout, LayoutConfig, reset_scene
from sim.tasks.phrasings import composed_templates
from sim.tasks.scene import COLORS, cube_body, success_pick, success_place, success_touch


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

    def lay_out(self, model: mujoco.MjModel, data: mujoco.MjData) -> Layout:
        """``reset`` in a world whose time goes on (a served or recording twin: time never goes back, its servos' and
        cameras' clocks read it): the arm at home and the cubes where the seed says, at the same ``data.time``."""
        t = data.time
        layout = self.reset(model, data)  # resets data.time
        data.time = t
        mujoco.mj_forward(model, data)
        return layout

    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        return self.definition.success(model, data, self.color)


Episode = TaskSpec


def paraphrase_groups(split: str = "train", *, composed: bool = False) -> tuple[tuple[str, ...], ...]:
    """Interchangeable instructions, one group per (task, colour): the ``split`` phrasings of that task for that
    colour (``policies.augment``'s ``paraphrases``; only the training phrasings, so that the held-out ones stay
    unseen); ``composed``: ``composed_phrasings`` (the training phrasings, then the composed rewordings)."""
    if composed:
        if split != "train":
            raise ValueError("composed phrasings are training phrasings: split must be 'train'")
        return tuple(composed_phrasings(name, color) for name in sorted(TASKS) for color in COLORS)
    return tuple(tuple(TASKS[name].instructions(color, split)) for name in sorted(TASKS) for color in COLORS)


def composed_phrasings(task: str, color: str) -> tuple[str, ...]:
    """The training phrasings of ``task`` for ``color`` (first, in their order), then its composed rewordings
    (``sim.tasks.phrasings.composed_templates``: the same wordings for every colour, none held out)."""
    definition = get_task(task)
    known = definition.templates("train") + definition.templates("held_out")
    extra = composed_templates(task, known)
    return tuple(definition.instructions(color, "train")) + tuple(t.format(color=color) for t in extra)


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
