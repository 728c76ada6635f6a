"""`onboard eval` with the scripted expert as the policy: report, plot, videos, runner and held-out phrasings."""

import json

import av
import pytest
from PIL import Image

from onboard.cli import main
from onboard.eval.stats import wilson_interval
from robot.latency import parse_latency
from sim import tasks as T


def _report(out):
    return json.loads((out / "report.json").read_text())


def test_eval_expert_writes_report_plot_and_video(tmp_path, capsys):
    out = tmp_path / "eval"
    argv = ["eval", "--policy.type=expert", "--task=touch", "--n=3", "--videos=1", f"--output_dir={out}"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "success: 3/3 = 100.0% (95% CI 43.9-100.0%)" in text
    report = _report(out)
    assert {"command", "config", "episodes", "summary", "runner_stats"} <= set(report)
    assert report["command"].startswith("onboard eval --policy.type=expert")
    episodes, s = report["episodes"], report["summary"]
    assert [e["seed"] for e in episodes] == [100_000, 100_001, 100_002]
    # the scripted expert touches the cube on every one of its seeds, and the episode ends there
    for e in episodes:
        assert e["success"] is True and e["fault"] is None, e
        assert 0 < e["time_to_success"] == e["duration_s"] < T.get_task("touch").max_duration_s, e
        assert e["ticks"] == round(e["duration_s"] * 30), e  # 30 Hz control, no stall at 0 ms latency
        assert f"seed {e['seed']} '{e['instruction']}': success at {e['time_to_success']:.2f} s" in text
    assert s["n"] == 3 and s["successes"] == 3 and s["success_rate"] == 1.0 and s["faults"] == 0
    assert s["ci95"] == pytest.approx(wilson_interval(3, 3))
    times = sorted(e["time_to_success"] for e in episodes)
    assert s["time_to_success"]["n"] == 3 and s["time_to_success"]["median"] == pytest.approx(times[1])
    colors = [e["color"] for e in episodes]
    assert {c: v["n"] for c, v in s["per_color"].items()} == {c: colors.count(c) for c in set(colors)}
    assert all(v["successes"] == v["n"] for v in s["per_color"].values())
    assert report["runner_stats"]["ticks"] == sum(e["ticks"] for e in episodes)
    with Image.open(out / "summary.png") as img:
        assert img.format == "PNG" and img.size[0] > 400
    videos = sorted((out / "videos").glob("*.mp4"))
    assert len(videos) == 1 and report["episodes"][0]["video"] == "videos/episode_000.mp4"
    with av.open(str(videos[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert frames[0].shape == (480, 640 + 192, 3)  # the overview camera beside the policy's 96 px views
    assert len(frames) == report["episodes"][0]["ticks"] + 1


def test_eval_sync_runner_with_latency(tmp_path):
    out = tmp_path / "sync"
    argv = ["eval", "--policy.type=expert", "--task=touch", "--n=2", "--latency=200ms", "--runner", "sync"]
    assert main([*argv, f"--output_dir={out}"]) == 0
    report = _report(out)
    assert report["config"]["runner"] == "sync" and abs(report["config"]["latency_s"] - 0.2) < 1e-9
    assert report["summary"]["successes"] == 2  # the expert still touches, later: the arm waits for each chunk
    for e in report["episodes"]:
        stats = e["runner_stats"]
        assert e["success"] is True and stats["requests"] >= 2, e
        assert stats["latency_s"]["p50"] == pytest.approx(0.2, abs=1e-6)
        # the sync runner stalls the loop for the whole latency of every request: sim time = ticks + stalls
        assert stats["stall_s"] == pytest.approx(0.2 * stats["requests"], abs=1e-6)
        assert e["duration_s"] == pytest.approx(e["ticks"] / 30 + stats["stall_s"], abs=0.01)
    assert report["runner_stats"]["requests"] == sum(e["runner_stats"]["requests"] for e in report["episodes"])


def test_eval_refill_at_replans_more_often_and_is_in_the_command(tmp_path, capsys):
    base = ["eval", "--policy.type=expert", "--task=touch", "--n=1"]
    assert main([*base, f"--output_dir={tmp_path / 'default'}"]) == 0
    assert main([*base, "--refill_at=25", f"--output_dir={tmp_path / 'often'}"]) == 0
    default, often = _report(tmp_path / "default"), _report(tmp_path / "often")
    assert often["config"]["refill_at"] == 25 and "--refill_at=25" in often["command"]
    assert default["config"]["refill_at"] is None and "--refill_at" not in default["command"]
    # the expert's chunks are 30 actions: by default one request per ~28 ticks, with 25 left one per ~5
    assert often["runner_stats"]["requests"] > 3 * default["runner_stats"]["requests"]
    capsys.readouterr()
    assert main([*base, "--runner=sync", "--refill_at=5", f"--output_dir={tmp_path / 'bad'}"]) == 2
    assert "--refill_at is the async runner's" in capsys.readouterr().err


def test_eval_blend_steps_reaches_the_runner_and_the_command(tmp_path, capsys, monkeypatch):
    from policies import runtime

    seen = []
    real = runtime.AsyncRunner.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.append(self.blend_steps)

    monkeypatch.setattr(runtime.AsyncRunner, "__init__", spy)
    base = ["eval", "--policy.type=expert", "--task=touch", "--n=1"]
    assert main([*base, "--blend_steps=4", f"--output_dir={tmp_path / 'b4'}"]) == 0
    assert main([*base, f"--output_dir={tmp_path / 'default'}"]) == 0
    assert seen == [4, 1]  # the runner's default ramp is one tick
    b4, default = _report(tmp_path / "b4"), _report(tmp_path / "default")
    assert b4["config"]["blend_steps"] == 4 and "--blend_steps=4" in b4["command"]
    assert default["config"]["blend_steps"] is None and "--blend_steps" not in default["command"]
    capsys.readouterr()
    assert main([*base, "--runner=sync", "--blend_steps=2", f"--output_dir={tmp_path / 'bad'}"]) == 2
    assert "--blend_steps is the async runner's" in capsys.readouterr().err


def test_eval_held_out_instruction_is_recorded(tmp_path):
    phrasing = T.get_task("touch").held_out_templates[0].format(color="blue")
    out = tmp_path / "held"
    argv = ["eval", "--policy.type=expert", "--task=touch", "--n=1", "--color", "blue", "--split=held_out"]
    assert main([*argv, "--instruction", phrasing, f"--output_dir={out}"]) == 0
    report = _report(out)
    (episode,) = report["episodes"]
    assert episode["instruction"] == phrasing and episode["split"] == "held_out" and episode["color"] == "blue"
    assert phrasing in report["summary"]["per_instruction"]

    out2 = tmp_path / "held2"
    assert (
        main(["eval", "--policy.type=expert", "--task=touch", "--n=2", "--split=held_out", f"--output_dir={out2}"]) == 0
    )
    held = {t.format(color=c) for t in T.get_task("touch").held_out_templates for c in T.COLORS}
    assert all(e["instruction"] in held for e in _report(out2)["episodes"])


def test_wilson_interval_and_latency_parsing():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(5, 10)
    assert abs(lo - 0.2366) < 1e-3 and abs(hi - 0.7634) < 1e-3
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and 0.69 < lo < 0.73
    assert parse_latency("200ms") == 0.2 and parse_latency("0.5s") == 0.5 and parse_latency("1") == 1.0
    assert parse_latency("wall") is None


def test_help_lists_eval(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "eval" in capsys.readouterr().out
