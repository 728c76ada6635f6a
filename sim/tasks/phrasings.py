"""More ways to say each task, for training only: the task's training phrasings plus rewordings composed from parts.

A policy trained on five phrasings per task and colour learns those five sentences' embeddings, not the task: told
the same thing in other words (issue 16's held-out phrasings) it did 10-30 points worse. ``composed_phrasings``
(``sim.tasks.registry``, from ``composed_templates`` here) gives each (task, colour) a few dozen training-only
rewordings (other verbs for the same act, "cube" or "block", polite and spoken openings and endings), so that in
training (``onboard train --augment.paraphrase --augment.phrasings composed``) the instruction's wording varies far more
than its task and colour do and the policy keys on those.

The held-out phrasings stay unseen: no composed phrasing is one of them, and none uses the words and constructions
that only they have (``HELD_OUT_ONLY``: "contact", "store", "container", "belongs", "air", "take", "get", "go",
"hold", "that is"); tests/sim/tasks/test_phrasings.py checks both. The set is fixed (a seeded choice from the
composition), so runs and their checkpoints' train_config.json are reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

# acts, with {obj} for "the <colour> cube|block"; the tasks' own training templates are kept as they are
VERBS: dict[str, tuple[str, ...]] = {
    "touch": (
        "touch {obj}",
        "tap {obj}",
        "poke {obj}",
        "reach out and touch {obj}",
        "put the gripper on {obj}",
        "touch {obj} with the gripper",
        "tap {obj} with the gripper",
        "reach for {obj} and touch it",
        "give {obj} a tap",
        "move the gripper to {obj} and touch it",
        "just touch {obj}, do not lift it",
    ),
    "pick": (
        "pick up {obj}",
        "grab {obj} and lift it",
        "lift {obj}",
        "pick {obj} up",
        "raise {obj} off the table",
        "lift up {obj}",
        "grasp {obj} and raise it",
        "pick up {obj} and keep it lifted",
        "grab {obj} and raise it",
        "lift {obj} off the table",
        "grip {obj} and lift it up",
    ),
    "place": (
        "put {obj} in the box",
        "place {obj} in the tray",
        "move {obj} into the box",
        "drop {obj} into the tray",
        "pick up {obj} and put it in the box",
        "put {obj} into the tray",
        "place {obj} inside the box",
        "move {obj} to the tray",
        "drop {obj} in the box",
        "set {obj} down in the tray",
        "put {obj} in the bin",
        "grab {obj} and drop it in the box",
    ),
}
OBJECTS = ("the {color} cube", "the {color} block")
OPENINGS = ("", "please ", "now ", "can you ", "could you ", "robot, ", "i want you to ", "next, ")
ENDINGS = ("", " please", " now", " for me")
PER_GROUP = 60  # composed rewordings per (task, colour), besides the task's training phrasings

# what only the held-out phrasings say (sim/tasks/registry.py): a composed phrasing uses none of it
HELD_OUT_ONLY = ("contact", "store", "container", "belongs", "air", "take", "get", "go", "hold", "that is")


def uses_held_out_words(text: str) -> bool:
    """Whether ``text`` has a word or construction of ``HELD_OUT_ONLY``."""
    words = re.findall(r"[a-z]+", text.lower())
    joined = " ".join(words)
    return any((" " in w and f" {w} " in f" {joined} ") or w in words for w in HELD_OUT_ONLY)


def composed_templates(task: str, known: Iterable[str] = (), per_group: int = PER_GROUP) -> tuple[str, ...]:
    """``per_group`` rewordings of ``task`` (templates with ``{color}``) composed from ``VERBS``, ``OBJECTS``,
    ``OPENINGS`` and ``ENDINGS``: a fixed, seeded choice, none of ``known`` (the task's own templates) and none with a
    word of ``HELD_OUT_ONLY``. A task without ``VERBS`` has none. (``sim.tasks.registry.composed_phrasings`` puts the
    task's training phrasings first and fills in the colour.)"""
    if task not in VERBS:
        return ()
    pool = sorted(
        {
            f"{opening}{verb.format(obj=obj)}{ending}"
            for verb in VERBS[task]
            for obj in OBJECTS
            for opening in OPENINGS
            for ending in ENDINGS
        }
        - set(known)
    )
    pool = [p for p in pool if not uses_held_out_words(p)]
    rng = np.random.default_rng(sorted(VERBS).index(task))
    return tuple(pool[i] for i in sorted(rng.choice(len(pool), size=min(per_group, len(pool)), replace=False)))
