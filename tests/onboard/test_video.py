"""onboard.video: a video frame is the scene's viewing camera at 640x480 beside the policy's own camera images, as the
policy got them; the viewing camera renders only while a video is being recorded."""

import numpy as np
import pytest

from tests.conftest import require

require("mujoco", "sim")

from onboard.video import BACKGROUND, VIEW_CAMERA, VideoEnv, compose, write_mp4  # noqa: E402
from sim.envs.env import SO101Env  # noqa: E402
from sim.twin.cameras import RenderedCamera  # noqa: E402


def test_compose_puts_the_policy_views_whole_pixels_beside_the_view():
    rng = np.random.default_rng(0)
    view = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    front = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    wrist = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    frame = compose(view, {"front": front, "wrist": wrist})
    assert frame.shape == (480, 640 + 192, 3)
    assert np.array_equal(frame[:, :640], view)
    column = frame[:, 640:]
    # two 192 px tiles (each policy pixel a 2x2 block) with 32 px above, between and below
    assert np.array_equal(column[32:224][::2, ::2], front) and np.array_equal(column[32:224][1::2, 1::2], front)
    assert np.array_equal(column[256:448][::2, ::2], wrist) and np.array_equal(column[257:448][::2, 1::2], wrist)
    assert (
        (column[:32] == BACKGROUND).all()
        and (column[224:256] == BACKGROUND).all()
        and (column[448:] == BACKGROUND).all()
    )


def test_compose_reduces_views_taller_than_their_share():
    view = np.zeros((480, 640, 3), np.uint8)
    big = np.arange(512 * 512 * 3, dtype=np.uint32).reshape(512, 512, 3).astype(np.uint8)
    frame = compose(view, {"a": big, "b": big})
    assert frame.shape == (480, 640 + 240, 3)  # each 512 px view in a 240 px share
    assert np.array_equal(frame[:240, 640:], big[(np.arange(240) * 512) // 240][:, (np.arange(240) * 512) // 240])
    assert np.array_equal(compose(view, {}), view)


@pytest.fixture
def env():
    env = SO101Env(task="pick", image_size=(96, 96))
    yield env
    env.close()


def test_video_env_films_the_overview_beside_the_observation(env, tmp_path):
    video = VideoEnv(env)
    obs, _ = video.reset(seed=3)
    assert not video.view.is_connected and video.frames == []  # not recording: nothing rendered

    video.recording = True
    action = obs["observation.state"].copy()
    action[0] += 20.0  # pan: the arm moves in the view
    shown = []
    for _ in range(10):
        obs, *_ = video.step(action)
        shown.append(obs)
        check = RenderedCamera(env.world, VIEW_CAMERA, height=480, width=640)  # the same camera, rendered again
        with check:
            assert np.array_equal(video.frames[-1][:, :640], check.read_latest().rgb)
    assert len(video.frames) == 10 and video.view.frames_rendered == 10
    for frame, o in zip(video.frames, shown):
        assert frame.shape == (480, 832, 3)
        assert np.array_equal(frame[32:224:2, 640::2], o["observation.images.front"])  # what the policy saw
        assert np.array_equal(frame[256:448:2, 640::2], o["observation.images.wrist"])
    assert np.abs(video.frames[-1][:, :640].astype(int) - video.frames[0][:, :640]).mean() > 0.5  # the arm moved

    video.recording = False
    video.step(action)
    assert len(video.frames) == 10 and video.view.frames_rendered == 10  # not recording: no render

    av = require("av", "sim")
    path = write_mp4(tmp_path / "v.mp4", video.frames, fps=env.fps)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 10 and decoded[0].shape == (480, 832, 3)
    video.close()
    assert not video.view.is_connected


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="Linux CPU affinity")
def test_the_same_frames_give_the_same_bytes_on_fewer_cores(tmp_path):
    # x264 picks its thread count from the CPUs the process may use, and its output follows the thread count: an
    # eval's video written in a pinned process or a Ray actor must still be the serial run's, byte for byte
    import os

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(20)]
    cores = os.sched_getaffinity(0)
    first = write_mp4(tmp_path / "all.mp4", frames).read_bytes()
    try:
        os.sched_setaffinity(0, {min(cores)})
        pinned = write_mp4(tmp_path / "one.mp4", frames).read_bytes()
    finally:
        os.sched_setaffinity(0, cores)
    assert pinned == first
