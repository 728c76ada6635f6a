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
a break before an episode counts as solved (``pick`` must be *held*, not tossed); ``sim.expert.harness.run_episode``
applies it, and environments built on these tasks should too.

The package by concern: ``scene`` (names and sizes from scene.xml, world-state readings, success predicates),
``layout`` (randomised scene layouts and the reset), ``registry`` (tasks, phrasings, episodes, the instruction judge),
``phrasings`` (training-only rewordings composed from parts).
Everything is re-exported here: ``from sim import tasks as T`` then ``T.get_task``, ``T.CUBE_HALF``, ...
"""

from sim.tasks.layout import DEFAULT_LAYOUT, Layout, LayoutConfig, apply_layout, reset_scene, sample_layout
from sim.tasks.registry import (
    PLACE_WORDS,
    TASKS,
    TOUCH_WORDS,
    Episode,
    Task,
    TaskSpec,
    get_task,
    judge_instruction,
    make_spec,
    paraphrase_groups,
    register_task,
    sample_task,
)
from sim.tasks.scene import (
    BOX_FLOOR_TOP,
    BOX_HALF_INNER,
    BOX_HALF_OUTER,
    BOX_WALL_TOP,
    COLORS,
    CUBE_HALF,
    FIXED_JAW_BODY,
    GRIPPER_BODIES,
    LIFT_HEIGHT,
    MOVING_JAW_BODY,
    PAN_AXIS_XY,
    REST_ANG_SPEED,
    REST_LIN_SPEED,
    TABLE_Z,
    box_center,
    contact_bodies,
    cube_body,
    cube_pose,
    cube_velocity,
    is_held,
    is_in_box,
    is_lifted,
    is_resting,
    is_touching,
    success_pick,
    success_place,
    success_touch,
)

__all__ = [
    "BOX_FLOOR_TOP",
    "BOX_HALF_INNER",
    "BOX_HALF_OUTER",
    "BOX_WALL_TOP",
    "COLORS",
    "CUBE_HALF",
    "DEFAULT_LAYOUT",
    "FIXED_JAW_BODY",
    "GRIPPER_BODIES",
    "LIFT_HEIGHT",
    "MOVING_JAW_BODY",
    "PAN_AXIS_XY",
    "PLACE_WORDS",
    "REST_ANG_SPEED",
    "REST_LIN_SPEED",
    "TABLE_Z",
    "TASKS",
    "TOUCH_WORDS",
    "Episode",
    "Layout",
    "LayoutConfig",
    "Task",
    "TaskSpec",
    "apply_layout",
    "box_center",
    "contact_bodies",
    "cube_body",
    "cube_pose",
    "cube_velocity",
    "get_task",
    "is_held",
    "is_in_box",
    "is_lifted",
    "is_resting",
    "is_touching",
    "judge_instruction",
    "make_spec",
    "paraphrase_groups",
    "register_task",
    "reset_scene",
    "sample_layout",
    "sample_task",
    "success_pick",
    "success_place",
    "success_touch",
]
