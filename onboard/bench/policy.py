"""`onboard bench policy`: per-chunk inference latency of the VLA in eager torch and in onnxruntime, and of
LeRobot's ACT on the same inputs.

Each backend runs batch 1 (one observation: state, two uint8 camera images, a precomputed 384-d task embedding) on
the CPU with ``--threads`` intra-op threads. After ``--warmup`` untimed calls, ``--n`` calls are timed one by one with
``time.perf_counter_ns``; p50 and p99 are reported per chunk and per action (per chunk / chunk length). Memory is the
growth of the process RSS (VmRSS) from just before a backend is built to just after its warm-up: it includes the
weights, the runtime's arenas and caches, not the cost of importing torch, which every row shares.

Without ``--checkpoint`` the VLA is randomly initialised with the default config: latency does not depend on the
weights. LeRobot's ACT (``lerobot.policies.act``, when lerobot is installed) is built from ``ACTConfig`` with the
same inputs and chunk length (``pretrained_backbone_weights=None``: random weights, nothing downloaded) and timed
through ``ACTPolicy.predict_action_chunk`` (one model call per chunk; ``select_action`` pops a queued action and
calls the model only once per chunk).

``--policy.url=ws://host:port`` adds a row for a policy served by `onboard serve-policy` (``bench_remote``): the
round trip of ``RemotePolicy.infer`` with an observation of the size the served policy takes (state, uint8 camera
images, the instruction), beside the server's own time in its policy (every reply carries it): the difference is
what the wire costs (msgpack, the websocket, the network). The token comes from ``ONBOARD_POLICY_TOKEN``.
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from onboard.bench.config import PolicyBenchConfig
from onboard.bench.sysinfo import machine_info, machine_lines
from onboard.cli.options import command_line


def rss_mb() -> float:
    """The resident set size of this process (MB) from /proc/self/status; the peak (ru_maxrss) elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_calls(fn: Callable[[], Any], n: int, warmup: int) -> np.ndarray:
    """Wall time of each of ``n`` calls (ms), after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(n, dtype=np.float64)
    clock = time.perf_counter_ns
    for i in range(n):
        t = clock()
        fn()
        out[i] = clock() - t
    return out / 1e6


def _row(name: str, how: str, times_ms: np.ndarray, chunk: int, rss_delta: float, params: int) -> dict[str, Any]:
    p50, p99 = (float(x) for x in np.percentile(times_ms, [50, 99]))
    return {
        "backend": name,
        "call": how,
        "chunk_size": chunk,
        "n": int(times_ms.size),
        "chunk_ms_p50": p50,
        "chunk_ms_p99": p99,
        "chunk_ms_mean": float(times_ms.mean()),
        "action_ms_p50": p50 / chunk,
        "action_ms_p99": p99 / chunk,
        "rss_delta_mb": rss_delta,
        "parameters": params,
    }


def _load_vla(checkpoint: str | None):
    from policies.vla import VLAConfig
    from policies.vla.model import VLA

    if checkpoint:
        from policies.vla.checkpoint import load_checkpoint

        model = load_checkpoint(checkpoint)[0]
    else:
        model = VLA(VLAConfig())
    return model.eval()


def bench_torch(bench: PolicyBenchConfig) -> tuple[dict[str, Any], Any, dict[str, np.ndarray]]:
    import torch

    gc.collect()
    before = rss_mb()
    model = _load_vla(bench.checkpoint)
    cfg = model.config
    inputs = _inputs(cfg)
    batch = {k: torch.from_numpy(v) for k, v in inputs.items()}

    def call():
        with torch.inference_mode():
            return model.predict(batch)  # (1,T,A) LeRobot units, from uint8 images and the task embedding

    time_calls(call, 1, bench.warmup)  # warm-up, then the memory, then the timed calls
    delta = rss_mb() - before
    times = time_calls(call, bench.n, 0)
    row = _row("VLA, eager torch", "VLA.predict", times, cfg.chunk_size, delta, model.num_parameters())
    return row, model, inputs


def bench_onnx(bench: PolicyBenchConfig, model, inputs: dict[str, np.ndarray], folder: Path) -> dict[str, Any]:
    import onnxruntime as ort

    from policies.vla.export import export_onnx, input_names

    path = export_onnx(model, folder / "vla.onnx")
    names = input_names(model)
    gc.collect()
    before = rss_mb()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = bench.threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {k: inputs[k] for k in names}

    def call():
        return session.run(None, feeds)

    time_calls(call, 1, bench.warmup)
    delta = rss_mb() - before
    times = time_calls(call, bench.n, 0)
    return _row("VLA, onnxruntime", "InferenceSession.run", times, model.config.chunk_size, delta, 0)


def bench_lerobot_act(bench: PolicyBenchConfig, cfg, inputs: dict[str, np.ndarray]) -> dict[str, Any] | None:
    try:
        import torch
        from lerobot.configs.types import FeatureType, PolicyFeature
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy
    except ImportError:
        return None
    H = cfg.image_size
    features = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(cfg.state_dim,))}
    for cam in cfg.cameras:
        features[f"observation.images.{cam}"] = PolicyFeature(type=FeatureType.VISUAL, shape=(3, H, H))
    gc.collect()
    before = rss_mb()
    config = ACTConfig(
        input_features=features,
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(cfg.action_dim,))},
        chunk_size=cfg.chunk_size,
        n_action_steps=cfg.chunk_size,
        pretrained_backbone_weights=None,
        device="cpu",
        push_to_hub=False,
    )
    policy = ACTPolicy(config).eval()
    # ACT takes normalised float images; LeRobot's preprocessor does that outside the policy, so it is not timed here.
    batch = {"observation.state": torch.from_numpy(inputs["observation.state"])}
    for cam in cfg.cameras:
        batch[f"observation.images.{cam}"] = torch.from_numpy(inputs[f"observation.images.{cam}"]).float() / 255.0

    def call():
        with torch.inference_mode():
            return policy.predict_action_chunk(batch)  # (1,T,A)

    time_calls(call, 1, bench.warmup)
    delta = rss_mb() - before
    times = time_calls(call, bench.n, 0)
    params = sum(p.numel() for p in policy.parameters())
    return _row(
        "LeRobot 0.4.4 ACT, eager torch", "ACTPolicy.predict_action_chunk", times, cfg.chunk_size, delta, params
    )


def bench_remote(bench: PolicyBenchConfig) -> dict[str, Any]:
    """The round trip of one chunk from the policy served at ``bench.policy_url`` (loopback or LAN), with an
    observation of the size it takes (state, uint8 HxWx3 per camera, the instruction); ``server_ms_p50``: the time
    the server spent in its policy, so round trip - server = the wire (msgpack, websocket, network)."""
    from policies.base import fake_observation
    from robot.policy_loader import load_policy

    loaded = load_policy(bench.policy_url, "remote")
    client = loaded.policy
    obs = fake_observation(cameras=loaded.cameras or ("front", "wrist"), image_size=loaded.image_size or (96, 96))
    client.reset(obs["task"])
    chunks: list[int] = []

    def call():
        chunks.append(len(client.infer(obs)))

    time_calls(call, 1, bench.warmup)
    client.server_s.clear()
    times = time_calls(call, bench.n, 0)
    server_ms = np.asarray(client.server_s, np.float64) * 1e3
    client.close()
    meta = client.metadata
    row = _row(f"served {meta.get('kind')} over ws", "RemotePolicy.infer", times, chunks[-1], 0.0, 0)
    row.update(
        url=bench.policy_url,
        served=meta.get("path"),
        server_ms_p50=float(np.percentile(server_ms, 50)),
        server_ms_p99=float(np.percentile(server_ms, 99)),
        observation_bytes=int(sum(v.nbytes for v in obs.values() if isinstance(v, np.ndarray))),
    )
    return row


def _inputs(cfg) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    H = cfg.image_size
    inputs = {"observation.state": (rng.standard_normal((1, cfg.state_dim)) * 30).astype(np.float32)}
    for cam in cfg.cameras:
        inputs[f"observation.images.{cam}"] = rng.integers(0, 256, (1, 3, H, H), dtype=np.uint8)
    emb = rng.standard_normal((1, cfg.text_dim)).astype(np.float32)
    inputs["task_embedding"] = emb / np.linalg.norm(emb)
    return inputs


def run(cfg: PolicyBenchConfig) -> dict[str, Any]:
    import torch

    torch.set_num_threads(cfg.threads)
    machine = machine_info()
    rows = []
    torch_row, model, inputs = bench_torch(cfg)
    model_cfg = model.config
    rows.append(torch_row)
    with tempfile.TemporaryDirectory(prefix="onboard-bench-policy-") as tmp:
        rows.append(bench_onnx(cfg, model, inputs, Path(tmp)))
    if cfg.lerobot:
        act = bench_lerobot_act(cfg, model_cfg, inputs)
        if act is not None:
            rows.append(act)
    if cfg.policy_url:
        rows.append(bench_remote(cfg))
    base = rows[0]["chunk_ms_p50"]
    for r in rows:
        r["ratio_to_vla_torch_p50"] = r["chunk_ms_p50"] / base
    versions = {"torch": torch.__version__}
    for mod in ("onnxruntime", "lerobot"):
        try:
            versions[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            versions[mod] = None
    machine["versions"] = versions
    machine["loadavg_after"] = machine_info()["loadavg"]
    m = model_cfg
    return {
        "command": command_line("onboard bench policy", cfg),
        "machine": machine,
        "threads": cfg.threads,
        "n": cfg.n,
        "warmup": cfg.warmup,
        "inputs": f"batch 1: state {m.state_dim}, {len(m.cameras)} cameras 3x{m.image_size}x{m.image_size} "
        f"uint8, task embedding {m.text_dim}; chunk {m.chunk_size} x {m.action_dim} actions",
        "checkpoint": cfg.checkpoint,
        "rows": rows,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        f"command: {report['command']}",
        *machine_lines(report["machine"]),
        f"inputs:  {report['inputs']}; {report['threads']} threads; {report['warmup']} warm-up calls, "
        f"{report['n']} timed (perf_counter_ns)",
        "",
    ]
    header = ["backend", "call", "params", "chunk p50 ms", "chunk p99 ms", "action p50 ms", "action p99 ms"]
    header += ["RSS +MB", "x VLA torch"]
    table = [header]
    for r in report["rows"]:
        table.append(
            [
                r["backend"],
                r["call"],
                f"{r['parameters'] / 1e6:.2f} M" if r["parameters"] else "(same)",
                f"{r['chunk_ms_p50']:.3f}",
                f"{r['chunk_ms_p99']:.3f}",
                f"{r['action_ms_p50']:.4f}",
                f"{r['action_ms_p99']:.4f}",
                f"{r['rss_delta_mb']:.1f}",
                f"{r['ratio_to_vla_torch_p50']:.2f}",
            ]
        )
    widths = [max(len(row[k]) for row in table) for k in range(len(header))]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))

    lines += [fmt(table[0]), fmt(["-" * w for w in widths]), *(fmt(row) for row in table[1:])]
    rows = {r["backend"]: r for r in report["rows"]}
    onnx, act = rows.get("VLA, onnxruntime"), rows.get("LeRobot 0.4.4 ACT, eager torch")
    torch_row = report["rows"][0]
    notes = []
    if onnx:
        notes.append(f"onnxruntime is {torch_row['chunk_ms_p50'] / onnx['chunk_ms_p50']:.1f}x faster than eager torch")
        if act:
            notes.append(f"LeRobot ACT takes {act['chunk_ms_p50'] / onnx['chunk_ms_p50']:.1f}x our ONNX time")
    if act is None:
        notes.append("LeRobot ACT: not measured (lerobot not installed, or --no-lerobot)")
    for r in report["rows"]:
        if "server_ms_p50" in r:
            wire = r["chunk_ms_p50"] - r["server_ms_p50"]
            notes.append(
                f"served at {r['url']}: round trip {r['chunk_ms_p50']:.2f} ms, of which the server's policy "
                f"{r['server_ms_p50']:.2f} ms and the wire (msgpack + websocket, {r['observation_bytes']} B "
                f"observation) {wire:.2f} ms"
            )
    lines += ["", "p50 per chunk: " + "; ".join(notes)]
    lines.append(
        "RSS +MB: growth of VmRSS while building and warming up that backend (weights, arenas); torch import excluded"
    )
    return "\n".join(lines)


def main(cfg: PolicyBenchConfig) -> int:
    """Time every backend ``cfg`` asks for, print the table to stdout, and write the numbers to ``cfg.json``."""
    report = run(cfg)
    print(render(report))
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
