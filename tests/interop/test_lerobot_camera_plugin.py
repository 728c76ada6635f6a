"""The camera plugin (plugins/lerobot_camera_onboard): LeRobot's camera type "onboard_sim" reads the shared-memory
cameras `onboard sim serve` publishes. In-process against a ``ShmFrameWriter`` (the publisher's side), then the whole
path: `lerobot-record` records one episode from the served twin, arm and cameras, and LeRobot reads it back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require
from tests.interop.served_twin import served_twin

pytestmark = pytest.mark.interop

H, W, FPS = 24, 32, 50


def plugin():
    require("lerobot.cameras", "interop")
    return require("lerobot_camera_onboard", "dev")  # plugins/, installed by scripts/setup.sh dev


def unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def published():
    """A shared-memory camera published from this process: (its name, writer)."""
    from hardware.shm_camera import ShmFrameWriter

    writer = ShmFrameWriter(unique("plugin-test"), height=H, width=W, fps=FPS).open()
    yield writer.name, writer
    writer.close()


def image(level: int) -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = level, 255 - level, np.arange(W, dtype=np.uint8)[None, :]
    return rgb


def test_lerobot_finds_the_camera_type_through_its_plugin_discovery():
    plugin()
    from lerobot.cameras.configs import CameraConfig
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    assert "onboard_sim" in CameraConfig.get_known_choices()


def test_the_config_takes_size_and_rate_from_the_publisher_and_lerobot_builds_the_camera(published):
    cams = plugin()
    from lerobot.cameras.utils import make_cameras_from_configs

    name, writer = published
    writer.write(image(10), time.monotonic())
    config = cams.OnboardSimCameraConfig(name=name)
    assert (config.width, config.height, config.fps) == (W, H, FPS)
    camera = make_cameras_from_configs({"front": config})["front"]  # LeRobot's factory, as a robot builds it
    assert isinstance(camera, cams.OnboardSimCamera)
    assert {"type": "onboard_sim", "id": name, "name": name} in cams.OnboardSimCamera.find_cameras()

    camera.connect()
    try:
        assert camera.is_connected
        np.testing.assert_array_equal(camera.read_latest(), image(10))
        np.testing.assert_array_equal(camera.async_read(timeout_ms=500), image(10))  # not returned before
        with pytest.raises(TimeoutError):
            camera.async_read(timeout_ms=50)  # nothing new since
        writer.write(image(20), time.monotonic())
        np.testing.assert_array_equal(camera.async_read(timeout_ms=500), image(20))
        writer.write(image(30), time.monotonic() - 2.0)  # a frame captured 2 s ago: the publisher is behind
        with pytest.raises(TimeoutError, match="old"):
            camera.read_latest(max_age_ms=500)
    finally:
        camera.disconnect()
    assert not camera.is_connected


def test_bgr_frames_and_a_size_that_must_match(published):
    cams = plugin()
    name, writer = published
    writer.write(image(40), time.monotonic())
    camera = cams.OnboardSimCamera(cams.OnboardSimCameraConfig(name=name, color_mode="bgr"))
    camera.connect()
    try:
        np.testing.assert_array_equal(camera.read(), image(40)[..., ::-1])
    finally:
        camera.disconnect()
    wrong = cams.OnboardSimCamera(cams.OnboardSimCameraConfig(name=name, width=64, height=H, fps=FPS))
    with pytest.raises(ConnectionError, match="width 64 asked"):
        wrong.connect()


def test_a_camera_nobody_serves_is_a_clear_error():
    cams = plugin()
    name = unique("nobody")
    with pytest.raises(ValueError, match="onboard sim serve") as info:
        cams.OnboardSimCameraConfig(name=name)  # the size is needed before connecting: read from the publisher
    assert "width, height and fps" in str(info.value)
    camera = cams.OnboardSimCamera(cams.OnboardSimCameraConfig(name=name, width=W, height=H, fps=FPS))
    with pytest.raises(ConnectionError, match=name):
        camera.connect()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`onboard sim serve` with a leader, calibrated, its cameras under a prefix of their own."""
    require("mujoco", "sim")
    with served_twin(tmp_path_factory.mktemp("served"), "--sim.task=pick", "--sim.color=red", leader=True) as twin:
        yield twin


@pytest.mark.slow
def test_lerobot_record_records_the_served_twin_with_its_cameras(served, tmp_path):
    plugin()
    require("lerobot.scripts.lerobot_record", "interop")
    root = tmp_path / "dataset"
    cmd = [
        str(Path(sys.executable).with_name("lerobot-record")),
        *served.robot(),
        *("--teleop.type=so101_leader", f"--teleop.port={served.leader}", "--teleop.id=leader"),
        f"--teleop.calibration_dir={served.calibration_dir}",
        *("--dataset.repo_id=local/served_cameras", f"--dataset.root={root}"),
        "--dataset.single_task=raise the red cube off the table",
        *("--dataset.num_episodes=1", "--dataset.episode_time_s=3", "--dataset.reset_time_s=0"),
        *("--dataset.push_to_hub=false", "--play_sounds=false", "--display_data=false"),
    ]
    env = {**os.environ, "HF_LEROBOT_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=170)
    assert proc.returncode == 0, proc.stderr[-4000:]

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/served_cameras", root=root)  # LeRobot's default video backend
    assert ds.meta.total_episodes == 1 and ds.fps == 30
    assert 15 <= len(ds) <= 91  # 3 s at 30 Hz (fewer when the loop runs late on a busy machine)
    for key in ("observation.images.front", "observation.images.wrist"):
        feature = ds.meta.features[key]
        assert feature["dtype"] == "video" and tuple(feature["shape"]) == (96, 96, 3)  # as served by default
        first, last = ds[0][key], ds[len(ds) - 1][key]  # (3, 96, 96) float in [0, 1]
        assert tuple(first.shape) == (3, 96, 96)
        assert float(first.std()) > 0.02  # a rendered scene, not a blank frame
        assert float((first - last).abs().mean()) > 0.01, key  # the arm moved in view: frames are not all equal
