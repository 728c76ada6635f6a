"""Evaluation seeds are never training layouts: `scripts/make_model.sh` records with `--sim.seed` 101-103,
201-203, 302 and 303 (episode i of a dataset gets its scene from ``(seed, i)``) and its DAgger rounds from seeds 1
million and up, `onboard eval` lays out scenes from seeds 100000+ and the periodic validation in `onboard train` from
50000+."""

import numpy as np

from sim.expert.harness import spec_for_seed
from sim.rigs.teleop import SimEpisodes


def _training_layouts(seed: int, n: int, task: str) -> set[int]:
    hooks = SimEpisodes.__new__(SimEpisodes)  # spec_for needs only the seed and the task list
    hooks.seed, hooks.tasks, hooks.colors = seed, (task,), ("red", "green", "blue")
    return {hooks.spec_for(i).seed for i in range(n)}


def test_eval_and_validation_layouts_are_not_training_layouts():
    train = set()
    # clean, pushed and pushed-near-the-cube datasets of scripts/make_model.sh
    for seed, task in (
        (101, "touch"),
        (102, "pick"),
        (103, "place"),
        (201, "touch"),
        (202, "pick"),
        (203, "place"),
        (302, "pick"),
        (303, "place"),
    ):
        layouts = _training_layouts(seed, 500, task)
        assert len(layouts) == 500  # distinct scenes within a dataset
        train |= layouts
    evaluation = {spec_for_seed(t, s).seed for t in ("touch", "pick", "place") for s in range(100_000, 101_000)}
    validation = {spec_for_seed("pick", s).seed for s in range(50_000, 50_100)}
    # `onboard dagger` in the script's rounds k = 1, 2, 3: pick from (2k - 1) million, place from 2k million, 80 each
    for k in (1, 2, 3):
        train |= {spec_for_seed("pick", s).seed for s in range((2 * k - 1) * 10**6, (2 * k - 1) * 10**6 + 80)}
        train |= {spec_for_seed("place", s).seed for s in range(2 * k * 10**6, 2 * k * 10**6 + 80)}
    assert evaluation == set(range(100_000, 101_000))
    assert not train & evaluation
    assert not train & validation


def test_eval_episode_draws_colour_and_phrasing_from_its_seed():
    a, b = spec_for_seed("pick", 100_007), spec_for_seed("pick", 100_007)
    assert a == b
    colours = {spec_for_seed("pick", s).color for s in range(100_000, 100_030)}
    assert colours == {"red", "green", "blue"}
    assert np.all([spec_for_seed("pick", s).split == "train" for s in range(100_000, 100_005)])
