"""scripts/pick_roll.py: the jaw-to-face angle it reports, checked on the scripted expert (which turns the jaws to a
cube face before it descends, so the angle must be small) and on plain rotations."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pick_roll():
    spec = importlib.util.spec_from_file_location("pick_roll", ROOT / "scripts" / "pick_roll.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("deg", [-170.0, -30.0, 0.0, 45.0, 120.0])
def test_face_yaw_of_an_upright_rotation(deg):
    # The script measures against sim.expert.cube_face_yaw: for an upright cube, its heading modulo the
    # faces' 90 deg.
    from sim.expert import cube_face_yaw

    half = math.radians(deg) / 2
    quat = np.array([math.cos(half), 0.0, 0.0, math.sin(half)])  # (w, x, y, z) about the vertical
    diff = (math.degrees(cube_face_yaw(quat)) - deg) % 90.0
    assert min(diff, 90.0 - diff) == pytest.approx(0.0, abs=1e-9)


def test_the_expert_reaches_the_cube_with_its_jaws_square_to_a_face(pick_roll):
    from onboard.eval.episodes import ExpertChunkPolicy
    from sim.envs.env import SO101Env
    from sim.expert.harness import spec_for_seed

    env = SO101Env(task="pick")
    try:
        for seed in (0, 1):
            spec = spec_for_seed("pick", seed)
            ok, radius, angle, offset, t = pick_roll.episode(env, ExpertChunkPolicy(env, horizon=30), spec)
            assert ok, spec
            assert 0.10 < radius < 0.35  # m from the pan axis: within the arm's reach
            assert angle is not None and angle < 5.0, (spec, angle)  # degrees from square to the nearest face
            assert offset < 40.0 and 0.0 < t < 10.0
    finally:
        env.close()
