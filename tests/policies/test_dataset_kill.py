"""A recording killed at EACH write of a save (not at random times) leaves a dataset that ``repair`` makes pass
``verify``, with every episode committed before the kill intact and loadable by LeRobot, and that the writer
continues.

A driver process forks one child per kill point. The child records (create, episode 0 with task "a", episode 1 with
the new task "b", so that tasks.parquet is rewritten between committed episodes) with every write that changes
what is on disk instrumented: ``av.open`` for writing (a video being encoded), ``pq.write_table``, ``open`` for
writing (the json files) and ``os.replace`` (every rename into place). At the k-th of them it SIGKILLs itself,
before the write, or (``torn``) after a write that it then truncates to half, as a kill inside the write would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from policies.dataset import DatasetWriter, EpisodeReader, layout, repair, verify
from tests.conftest import require

SIZE, N = 64, 4  # tiny images, short episodes: 50-odd kills in seconds
TASKS = ("a", "b")

DRIVER = textwrap.dedent(
    """
    import builtins, json, os, signal, sys, threading
    from pathlib import Path
    import av, numpy as np, pyarrow.parquet as pq
    from policies.dataset import DatasetWriter
    from tests.policies.test_dataset_kill import FEATURES, TASKS, N, frame

    base = Path(sys.argv[1])
    real = {"av": av.open, "pq": pq.write_table, "open": builtins.open, "replace": os.replace}
    state = {"k": 0, "kill": None, "torn": False, "ops": []}
    lock = threading.Lock()

    def hit(op, path, do):
        with lock:
            state["k"] += 1
            here = state["k"] == state["kill"]
            state["ops"].append(f"{op} {Path(str(path)).name}")
        if here and state["torn"] and op == "rename":
            os._exit(3)  # a rename is atomic: nothing is torn
        if here and not state["torn"]:
            os.kill(os.getpid(), signal.SIGKILL)
        result = do()
        if here:  # torn: the write happened, half of it reached the disk
            if hasattr(result, "close"):
                result.close()
            if os.path.exists(path):  # (an mp4 is only created when its first frame is muxed)
                os.truncate(path, os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    av.open = lambda f, mode="r", *a, **kw: (
        hit("encode", f, lambda: real["av"](f, mode, *a, **kw)) if "w" in mode else real["av"](f, mode, *a, **kw))
    pq.write_table = lambda t, where, *a, **kw: hit("parquet", where, lambda: real["pq"](t, where, *a, **kw))
    builtins.open = lambda f, mode="r", *a, **kw: (
        hit("write", f, lambda: real["open"](f, mode, *a, **kw)) if "w" in mode else real["open"](f, mode, *a, **kw))
    os.replace = lambda src, dst, *a, **kw: hit("rename", dst, lambda: real["replace"](src, dst, *a, **kw))

    def scenario(root, log):
        w = DatasetWriter.create(root, fps=30, features=FEATURES, robot_type="so_follower")
        for ep, task in enumerate(TASKS):
            for i in range(N):
                w.add_frame(frame(ep, i))
            w.save_episode(task)
            with real["open"](log, "a") as f:
                f.write(f"{ep}\\n")
        w.close()

    runs = []
    k = 1
    while True:
        done = False
        for torn in (False, True):
            name = f"k{k:03d}{'t' if torn else ''}"
            pid = os.fork()
            if pid == 0:
                state.update(kill=k, torn=torn, k=0)
                try:
                    scenario(base / name, base / (name + ".log"))
                except BaseException:
                    os._exit(2)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3:
                continue
            if os.WIFEXITED(status):
                assert os.WEXITSTATUS(status) == 0, (name, status)
                done = True  # fewer than k writes: the scenario ran to the end
                break
            assert os.WTERMSIG(status) == signal.SIGKILL, (name, status)
            runs.append(name)
        if done:
            break
        k += 1
    state.update(kill=None, k=0, ops=[])
    scenario(base / "complete", base / "complete.log")
    print(json.dumps({"runs": runs, "ops": state["ops"]}))
    """
)

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
    "action": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
    "observation.images.front": {"dtype": "video", "shape": (SIZE, SIZE, 3), "names": ["height", "width", "channels"]},
}


def frame(ep: int, i: int) -> dict:
    return {
        "observation.state": np.full(6, 100 * ep + i, np.float32),
        "action": np.full(6, -(100 * ep + i), np.float32),
        "observation.images.front": np.full((SIZE, SIZE, 3), 40 + 60 * ep + 10 * i, np.uint8),
    }


def check_intact(root: Path, episodes: int) -> None:
    reader = EpisodeReader(root)
    assert reader.num_episodes == episodes
    for ep in range(episodes):
        e = reader.episode(ep)
        np.testing.assert_array_equal(e.state[:, 0], 100 * ep + np.arange(N))
        assert e.task == TASKS[ep]
        levels = reader.frames(ep, "observation.images.front").mean(axis=(1, 2, 3))
        assert np.abs(levels - (40 + 60 * ep + 10 * np.arange(N))).max() < 3


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, list[str], list[str]]:
    base = tmp_path_factory.mktemp("kills").resolve()
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, str(base)],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo), "SVT_LOG": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return base, result["runs"], result["ops"]


def test_every_write_of_a_recording_is_a_kill_point(killed) -> None:
    base, runs, ops = killed
    # create: info.json written + renamed; each save: its video, data and episodes tables, their renames, then
    # tasks.parquet (a new task each time), stats.json and info.json, each written then renamed
    assert ops.count("rename info.json") == 3 and ops.count("rename tasks.parquet") == 2, ops
    i = ops.index("rename tasks.parquet", ops.index("rename tasks.parquet") + 1)
    assert ops[i + 1 : i + 5] == ["write stats.json.partial", "rename stats.json", "write info.json.partial",
                                  "rename info.json"], ops  # fmt: skip
    assert len([r for r in runs if not r.endswith("t")]) == len(ops)  # a kill before each of them
    assert verify(base / "complete").ok


def test_repair_after_a_kill_at_any_write(killed) -> None:
    base, runs, ops = killed
    lerobot = require("lerobot.datasets.lerobot_dataset", "interop").LeRobotDataset
    for name in runs:
        root = base / name
        log = base / (name + ".log")
        saved = len(log.read_text().split()) if log.exists() else 0  # save_episode returned for these
        where = f"killed at {name} (before/in: {ops[int(name[1:4]) - 1]})"
        if not (root / layout.INFO_PATH).exists():  # killed inside create: nothing was committed
            assert saved == 0, where
            DatasetWriter.create(root, fps=30, features=FEATURES).close()
            continue
        repair(root)
        report = verify(root)
        assert report.ok and not report.warnings, f"{where}: {report}"
        total = json.loads((root / layout.INFO_PATH).read_text())["total_episodes"]
        assert total in (saved, saved + 1), where  # +1: killed after info.json's rename, before save returned
        check_intact(root, total)
        if total:
            ds = lerobot(f"local/{name}", root=root, video_backend="pyav")
            assert ds.num_episodes == total and len(ds) == total * N, where
            assert ds[len(ds) - 1]["observation.state"][0].item() == 100 * (total - 1) + N - 1, where
        with DatasetWriter.resume(root) as w:  # and the recording goes on
            for i in range(N):
                w.add_frame(frame(total, i))
            w.save_episode(TASKS[total % 2])
        assert verify(root).ok, where
