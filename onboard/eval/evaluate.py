"""`onboard eval`: a policy on N simulated episodes with seeds no training data used, and a report.

```bash
onboard eval --policy.path=runs/vla/last --task=pick --n=50 --output_dir=outputs/eval/pick
onboard eval --policy.type=expert --task=touch --n=3 --videos=1 --output_dir=outputs/eval/expert
```

Episodes run on the mirrored stack (``SO101Env``) with the policy behind the runtime's async or sync runner
(``onboard.eval.episodes.run_episode_with_runner``); the policy and the runner come from the factories the caller passes
(``robot.policy_factories.policy_and_size`` / ``make_runner``: sim/ imports nothing of policies/). Seeds
``seed0 .. seed0 + n - 1`` (default 100000: the data generation draws its layouts from small seeds) pick the colour,
the phrasing and the layout. Written to ``output_dir``:

- ``report.json``: the command, the config, one record per episode, the summary (success rate with a 95 % Wilson
  interval, overall and per colour and per instruction; time to success median and p90) and the runner stats;
- ``summary.png``: success rate with its interval per colour and instruction, and a histogram of times to success;
- ``videos/episode_NNN.mp4`` for the first ``videos`` episodes: front and wrist views side by side, rendered by extra
  cameras on every env step at a readable size (not the policy's small input images).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onboard.eval.episodes import (
    ExpertChunkPolicy,
    LoadPolicy,
    MakeRunner,
    RunnerEpisodeResult,
    run_episode_with_runner,
)
from onboard.eval.expert import spec_for_seed
from onboard.video import write_mp4
from robot.latency import parse_latency
from sim import tasks as T
from sim.envs.env import SO101Env
from sim.twin.cameras import RenderedCamera

POLICY_TYPES = ("vla", "onnx", "lerobot", "expert")
Z95 = 1.959963984540054


@dataclass(frozen=True)
class EvalConfig:
    policy_path: str | None = None
    policy_type: str | None = None  # set before evaluating: robot.policy_factories.detect_policy_type(policy_path)
    task: str = "pick"
    color: str = "all"
    instruction: str | None = None  # the same instruction for every episode (overrides the seed's phrasing)
    split: str = "train"
    n: int = 50
    seed0: int = 100_000
    latency: str = "0ms"  # emulated inference latency per chunk; "wall": the measured wall time of infer (async)
    runner: str = "async"
    refill_at: int | None = None  # async: actions left when the next chunk is requested (None: the runner's default)
    blend_steps: int | None = None  # async: ticks over which a new chunk takes over the plan (None: runner default)
    videos: int = 0
    video_size: int = 240  # height of the video views (px)
    output_dir: str = "outputs/eval"
    horizon: int = 30  # expert only: the chunk length
    num_envs: int = 1  # environments, each in its own worker process (onboard/eval/workers.py)
    safety: bool = True  # actions through SafeArm, as `onboard run` sends them (robot/safety.py)

    def command(self) -> str:
        """The `onboard eval` command line that reproduces this run."""
        parts = ["onboard", "eval", f"--policy.type={self.resolved_policy_type()}"]
        if self.policy_path:
            parts.append(f"--policy.path={self.policy_path}")
        parts += [f"--task={self.task}", f"--color={self.color}"]
        if self.instruction:
            parts.append(f"--instruction={self.instruction}")
        parts += [f"--split={self.split}", f"--n={self.n}", f"--seed0={self.seed0}", f"--latency={self.latency}"]
        parts.append(f"--runner={self.runner}")
        if self.refill_at is not None:
            parts.append(f"--refill_at={self.refill_at}")
        if self.blend_steps is not None:
            parts.append(f"--blend_steps={self.blend_steps}")
        parts += [f"--videos={self.videos}", f"--output_dir={self.output_dir}"]
        parts.append(f"--safety={'on' if self.safety else 'off'}")
        if self.num_envs != 1:
            parts.append(f"--num_envs={self.num_envs}")
        return shlex.join(parts)

    def resolved_policy_type(self) -> str:
        """``policy_type``; set it first (``config_from_args`` does, from the policy folder, when not given)."""
        if not self.policy_type:
            raise ValueError("EvalConfig.policy_type is not set (robot.policy_factories.detect_policy_type gives one)")
        return self.policy_type


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


def specs_for(cfg: EvalConfig) -> list[T.TaskSpec]:
    """The episodes of ``cfg``: colour, phrasing and layout from each seed (an ``instruction`` rewords them all)."""
    T.get_task(cfg.task)
    colors = T.COLORS if cfg.color in ("all", "", None) else (cfg.color,)
    for c in colors:
        T.cube_body(c)
    specs = []
    for i in range(cfg.n):
        spec = spec_for_seed(cfg.task, cfg.seed0 + i, colors, cfg.split)
        if cfg.instruction:
            spec = dataclasses.replace(spec, instruction=cfg.instruction)
        specs.append(spec)
    return specs


class VideoEnv:
    """``env`` with two extra cameras (front and wrist, larger than the policy's) read after every reset and step
    while ``recording``; ``frames`` holds the side-by-side views."""

    def __init__(self, env: SO101Env, size: int):
        self.env = env
        self.front = RenderedCamera(
            env.world, "front", name="eval_front", height=size, width=size * 4 // 3, fps=env.fps
        )
        self.wrist = RenderedCamera(env.world, "wrist", name="eval_wrist", height=size, width=size, fps=env.fps)
        self.front.connect()
        self.wrist.connect()
        self.recording = False
        self.frames: list[np.ndarray] = []

    @property
    def unwrapped(self) -> SO101Env:
        return self.env

    def _grab(self) -> None:
        if self.recording:
            self.frames.append(np.concatenate([self.front.read_latest().rgb, self.wrist.read_latest().rgb], axis=1))

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._grab()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab()
        return out

    def close(self) -> None:
        self.front.disconnect()
        self.wrist.disconnect()


def _make_policy(cfg: EvalConfig, env_factory: Callable[[int], SO101Env], load_policy: LoadPolicy):
    """(policy, env): the policy of ``cfg`` (the scripted expert, or ``load_policy``'s) and an env whose cameras give
    it the image size it takes."""
    kind = cfg.resolved_policy_type()
    if kind not in POLICY_TYPES:
        raise ValueError(f"--policy.type must be one of {POLICY_TYPES}, got {kind!r}")
    if kind == "expert":
        env = env_factory(96)
        return ExpertChunkPolicy(env, horizon=cfg.horizon), env
    if not cfg.policy_path:
        raise ValueError(f"--policy.path is required for --policy.type={kind}")
    policy, size = load_policy(kind, cfg.policy_path)
    return policy, env_factory(size)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rate(results: list[dict]) -> dict[str, Any]:
    k = sum(r["success"] for r in results)
    n = len(results)
    lo, hi = wilson_interval(k, n)
    return {"n": n, "successes": k, "success_rate": k / n if n else 0.0, "ci95": [lo, hi]}


def summarize(episodes: list[dict]) -> dict[str, Any]:
    """Success rate with its 95 % Wilson interval (overall, per colour, per instruction) and time to success."""
    times = [e["time_to_success"] for e in episodes if e["success"] and e["time_to_success"] is not None]
    summary = _rate(episodes)
    summary["time_to_success"] = {
        "n": len(times),
        "median": float(np.median(times)) if times else None,
        "p90": float(np.percentile(times, 90)) if times else None,
    }
    summary["faults"] = sum(e["fault"] is not None for e in episodes)
    for key, name in (("color", "per_color"), ("instruction", "per_instruction")):
        groups: dict[str, list[dict]] = {}
        for e in episodes:
            groups.setdefault(e[key], []).append(e)
        summary[name] = {g: _rate(rs) for g, rs in sorted(groups.items())}
    return summary


def runner_totals(episodes: list[dict]) -> dict[str, Any]:
    """The runner's counters summed over episodes, and latency / infer wall time percentiles of the per-episode
    medians."""
    totals: dict[str, Any] = {}
    for e in episodes:
        for k, v in e["runner_stats"].items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                totals[k] = totals.get(k, 0) + v
    for k in ("latency_s", "infer_wall_s"):
        medians = [e["runner_stats"].get(k, {}).get("p50") for e in episodes]
        medians = [m for m in medians if m is not None and math.isfinite(m)]
        totals[f"{k}_p50_median"] = float(np.median(medians)) if medians else None
        totals[f"{k}_p50_max"] = float(np.max(medians)) if medians else None
    return totals


def _record(i: int, result: RunnerEpisodeResult, wall_s: float, video: str | None) -> dict[str, Any]:
    s = result.spec
    return {
        "episode": i,
        "seed": s.seed,
        "task": s.task,
        "color": s.color,
        "instruction": s.instruction,
        "split": s.split,
        "success": bool(result.success),
        # µs: the sim clock runs on across episodes, so the same episode's times differ in the last float bits
        # between an env that ran other episodes before and a fresh one (--num_envs)
        "time_to_success": None if result.time_to_success is None else round(result.time_to_success, 6),
        "ticks": result.ticks,
        "duration_s": round(result.duration_s, 6),
        "wall_s": wall_s,
        "fault": result.fault,
        "video": video,
        "runner_stats": result.stats,
    }


class EpisodeRunner:
    """The env and policy of ``cfg``, built once, running episodes by index (with a video for the first
    ``cfg.videos``): the serial loop of ``evaluate`` and each worker of ``--num_envs`` (onboard/eval/workers.py).
    ``load_policy`` / ``make_runner``: the factories (``robot.policy_factories``)."""

    def __init__(
        self, cfg: EvalConfig, out: Path, latency_s: float | None, *, load_policy: LoadPolicy, make_runner: MakeRunner
    ):
        self.cfg, self.out, self.latency_s = cfg, out, latency_s
        self.make_runner = make_runner
        self.policy, self.env = _make_policy(
            cfg, lambda size: SO101Env(task=cfg.task, image_size=(size, size), safety=cfg.safety), load_policy
        )
        self.venv = VideoEnv(self.env, cfg.video_size) if cfg.videos > 0 else None

    def run(self, i: int, spec: T.TaskSpec) -> dict[str, Any]:
        """Episode ``i`` (of ``spec``): its report record."""
        venv = self.venv
        recording = venv is not None and i < self.cfg.videos
        if venv is not None:
            venv.recording, venv.frames = recording, []
        t = time.monotonic()
        kwargs = {k: v for k in ("refill_at", "blend_steps") if (v := getattr(self.cfg, k)) is not None}
        result = run_episode_with_runner(
            venv or self.env, self.policy, self.cfg.runner, self.latency_s, spec, make_runner=self.make_runner, **kwargs
        )
        wall = time.monotonic() - t
        video = None
        if recording and venv is not None and venv.frames:
            path = write_mp4(self.out / "videos" / f"episode_{i:03d}.mp4", venv.frames, fps=self.env.fps)
            video = str(path.relative_to(self.out))
            venv.frames = []
        return _record(i, result, wall, video)

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()
        self.env.close()


def episode_line(record: dict[str, Any], n: int) -> str:
    """The progress line of a finished episode."""
    outcome = f"success at {record['time_to_success']:.2f} s" if record["success"] else "failure"
    if record["fault"]:
        outcome += f" (fault: {record['fault']})"
    return f"  episode {record['episode'] + 1}/{n} seed {record['seed']} {record['instruction']!r}: {outcome}"


def evaluate(
    cfg: EvalConfig,
    *,
    load_policy: LoadPolicy,
    make_runner: MakeRunner,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the evaluation of ``cfg`` (module docstring); returns the report (also written to report.json).
    ``load_policy`` / ``make_runner``: ``robot.policy_factories``'s ``policy_and_size`` / ``make_runner``; top-level
    functions, as ``--num_envs`` pickles them into its worker processes."""
    if cfg.n < 1:
        raise ValueError(f"--n must be >= 1, got {cfg.n}")
    if cfg.runner not in ("async", "sync"):
        raise ValueError(f"--runner must be 'async' or 'sync', got {cfg.runner!r}")
    if cfg.refill_at is not None and (cfg.runner != "async" or cfg.refill_at < 0):
        raise ValueError(
            f"--refill_at is the async runner's actions-left threshold (>= 0), got {cfg.refill_at} with "
            f"--runner={cfg.runner} (the sync runner infers only when its chunk is used up)"
        )
    if cfg.blend_steps is not None and (cfg.runner != "async" or cfg.blend_steps < 0):
        raise ValueError(
            f"--blend_steps is the async runner's blend ramp in ticks (>= 0), got {cfg.blend_steps} with "
            f"--runner={cfg.runner} (the sync runner's chunks do not overlap)"
        )
    if cfg.num_envs < 1:
        raise ValueError(f"--num_envs must be >= 1, got {cfg.num_envs}")
    cfg.resolved_policy_type()
    latency_s = parse_latency(cfg.latency)
    specs = specs_for(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    t_start = time.monotonic()
    if cfg.num_envs > 1:
        from onboard.eval.workers import run_parallel

        episodes = run_parallel(cfg, specs, latency_s, out, log=log, load_policy=load_policy, make_runner=make_runner)
    else:
        runner = EpisodeRunner(cfg, out, latency_s, load_policy=load_policy, make_runner=make_runner)
        episodes = []
        try:
            for i, spec in enumerate(specs):
                episodes.append(runner.run(i, spec))
                log(episode_line(episodes[-1], cfg.n))
        finally:
            runner.close()

    summary = summarize(episodes)
    report = {
        "command": cfg.command(),
        "config": {**dataclasses.asdict(cfg), "policy_type": cfg.resolved_policy_type(), "latency_s": latency_s},
        "episodes": episodes,
        "summary": summary,
        "runner_stats": runner_totals(episodes),
        "wall_s": time.monotonic() - t_start,
    }
    report = _clean(report)
    (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    draw_summary(report, out / "summary.png")
    log(format_summary(report))
    return report


def format_summary(report: dict[str, Any]) -> str:
    s = report["summary"]
    cfg = report["config"]
    lo, hi = s["ci95"]
    lines = [
        f"{cfg['policy_type']} on {cfg['task']} ({cfg['split']} phrasings), {s['n']} episodes "
        f"from seed {cfg['seed0']}, "
        f"{cfg['runner']} runner, latency {cfg['latency']}",
        f"success: {s['successes']}/{s['n']} = {100 * s['success_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)",
    ]
    tts = s["time_to_success"]
    if tts["n"]:
        lines.append(f"time to success: median {tts['median']:.2f} s, p90 {tts['p90']:.2f} s")
    if s["faults"]:
        lines.append(f"servo faults: {s['faults']}")
    for name, rate in s["per_color"].items():
        lines.append(f"  {name:<6} {rate['successes']}/{rate['n']} = {100 * rate['success_rate']:.1f}%")
    for name, rate in s["per_instruction"].items():
        lines.append(f"  {name!r}: {rate['successes']}/{rate['n']} = {100 * rate['success_rate']:.1f}%")
    lines.append(f"report: {Path(cfg['output_dir']) / 'report.json'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------------
# The summary plot (Pillow only)


def draw_summary(report: dict[str, Any], path: str | Path) -> Path:
    """summary.png: horizontal bars of success rate with 95 % interval whiskers (all, per colour, per instruction),
    and a histogram of times to success."""
    from PIL import Image, ImageDraw, ImageFont

    s = report["summary"]
    rows: list[tuple[str, dict]] = [("all", s)]
    rows += [(f"colour {c}", r) for c, r in s["per_color"].items()]
    rows += [(_shorten(i, 40), r) for i, r in s["per_instruction"].items()]
    font = ImageFont.load_default()
    width, label_w, margin, row_h = 900, 300, 20, 26
    bars_top = 50
    bars_h = row_h * len(rows)
    hist_top = bars_top + bars_h + 60
    hist_h = 200
    height = hist_top + hist_h + 50
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    cfg = report["config"]
    d.text(
        (margin, 10),
        f"{cfg['policy_type']} on {cfg['task']} ({cfg['split']}), n={s['n']}, {cfg['runner']} runner, "
        f"latency {cfg['latency']}: success rate with 95% Wilson CI",
        fill="black",
        font=font,
    )
    x0, x1 = label_w, width - margin - 60

    def xof(v: float) -> int:
        return round(x0 + v * (x1 - x0))

    for k in range(0, 11, 2):  # grid and axis labels
        x = xof(k / 10)
        d.line([(x, bars_top - 5), (x, bars_top + bars_h)], fill=(220, 220, 220))
        d.text((x - 8, bars_top + bars_h + 4), f"{k * 10}%", fill="gray", font=font)
    for j, (label, rate) in enumerate(rows):
        y = bars_top + j * row_h
        d.text((margin, y + 7), label, fill="black", font=font)
        color = (70, 110, 200) if j else (40, 150, 80)
        d.rectangle([x0, y + 4, max(x0 + 1, xof(rate["success_rate"])), y + row_h - 4], fill=color)
        lo, hi = rate["ci95"]
        ym = y + row_h // 2
        d.line([(xof(lo), ym), (xof(hi), ym)], fill="black", width=2)
        d.line([(xof(lo), ym - 6), (xof(lo), ym + 6)], fill="black", width=2)
        d.line([(xof(hi), ym - 6), (xof(hi), ym + 6)], fill="black", width=2)
        d.text((x1 + 8, y + 7), f"{rate['successes']}/{rate['n']}", fill="black", font=font)

    # histogram of time to success
    times = [e["time_to_success"] for e in report["episodes"] if e["success"] and e["time_to_success"] is not None]
    t_max = float(T.get_task(cfg["task"]).max_duration_s)
    nbins = 20
    counts = np.histogram(times, bins=nbins, range=(0.0, t_max))[0] if times else np.zeros(nbins, int)
    tts = s["time_to_success"]
    title = f"time to success (s), {len(times)} successes"
    if tts["n"]:
        title += f": median {tts['median']:.2f} s, p90 {tts['p90']:.2f} s"
    d.text((margin, hist_top - 25), title, fill="black", font=font)
    hx0, hx1, hy1 = margin + 40, width - margin, hist_top + hist_h
    top = max(1, int(counts.max()))
    d.line([(hx0, hy1), (hx1, hy1)], fill="black")
    d.line([(hx0, hist_top), (hx0, hy1)], fill="black")
    d.text((margin, hist_top - 5), str(top), fill="gray", font=font)
    d.text((margin, hy1 - 10), "0", fill="gray", font=font)
    bw = (hx1 - hx0) / nbins
    for b, c in enumerate(counts):
        if c:
            bx = hx0 + b * bw
            d.rectangle([round(bx + 1), round(hy1 - c / top * hist_h), round(bx + bw - 1), hy1], fill=(200, 120, 60))
    for b in range(0, nbins + 1, 4):
        x = round(hx0 + b * bw)
        d.text((x - 8, hy1 + 5), f"{b * t_max / nbins:g}", fill="gray", font=font)
    path = Path(path)
    img.save(path, format="PNG")
    return path


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def config_from_args(args, detect_policy_type: Callable[[str | None], str]) -> EvalConfig:
    """The `onboard eval` arguments as an ``EvalConfig``; without ``--policy.type`` the type is
    ``detect_policy_type(--policy.path)`` (``robot.policy_factories.detect_policy_type``)."""
    return EvalConfig(
        policy_path=args.policy_path,
        policy_type=args.policy_type or detect_policy_type(args.policy_path),
        task=args.task,
        color=args.color,
        instruction=args.instruction,
        split=args.split,
        n=args.n,
        seed0=args.seed0,
        latency=args.latency,
        runner=args.runner,
        refill_at=getattr(args, "refill_at", None),
        blend_steps=getattr(args, "blend_steps", None),
        videos=args.videos,
        output_dir=args.output_dir,
        num_envs=getattr(args, "num_envs", 1),
        safety=getattr(args, "safety", "on") == "on",
    )
