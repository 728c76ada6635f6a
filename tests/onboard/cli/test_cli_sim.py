"""The simulated-arm commands as a person runs them: show, expert, serve, bench."""

import subprocess
import sys

import av
import pytest

from hardware.feetech.bus import FeetechBus
from onboard.cli import main


def test_sim_show_writes_a_video_of_a_successful_episode(tmp_path, capsys):
    out = tmp_path / "show.mp4"
    assert main(["sim", "show", "--task", "pick", "--color", "blue", "--seed", "2", "--out", str(out)]) == 0
    assert "success at" in capsys.readouterr().out
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) >= 60  # the whole episode, 30 fps
    assert frames[0].shape == (240, 560, 3)  # front view and wrist view side by side
    assert frames[0].std() > 10 and abs(frames[-1].astype(int) - frames[0]).mean() > 1  # things moved


@pytest.mark.parametrize("task", ["touch", "pick", "place"])
def test_expert_solves_a_sample_of_seeds_on_the_mirrored_stack(task, capsys):
    assert main(["sim", "expert", "--task", task, "--n", "3", "--seed0", "500"]) == 0
    out = capsys.readouterr().out
    assert "mirrored stack" in out
    row = next(line for line in out.splitlines() if line.startswith(task))
    assert "100.0%" in row, out


def test_expert_runs_on_the_degraded_stack(capsys):
    """--stack degraded: MuJoCo's actuators made worse as servos are (sim.expert.harness.DegradedExecutor)."""
    assert main(["sim", "expert", "--task", "touch", "--n", "2", "--stack", "degraded"]) == 0
    out = capsys.readouterr().out
    assert "degraded stack" in out and any(line.startswith("touch") for line in out.splitlines())


def test_sim_serve_is_a_device_any_driver_can_open():
    proc = subprocess.Popen(
        [sys.executable, "-m", "onboard.cli", "sim", "serve", "--seed", "3", "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        with FeetechBus(path) as bus:
            positions = bus.sync_read("Present_Position", [1, 2, 3, 4, 5, 6])
            assert set(positions) == {1, 2, 3, 4, 5, 6}
            assert any(abs(v - 2048) > 20 for v in positions.values())  # a new kit: horns anywhere
    finally:
        proc.terminate()
        proc.wait(timeout=10)
