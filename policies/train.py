"""Training the small VLA on CPU: `onboard train`.

One or more LeRobot v3.0 datasets -> ``ChunkDataset`` (frames decoded once and cached) -> the VLA with an L1 loss on
normalised action chunks, AdamW with warm-up and cosine decay. Instruction embeddings come from the frozen sentence
encoder, computed once per distinct instruction. Every ``save_every`` steps a checkpoint (safetensors + JSON, no
pickle) is written atomically to ``<out>/checkpoints/<step>/`` and ``<out>/last`` points at it; the optimizer state is
saved beside it, so ``resume`` continues exactly where a killed run stopped. ``evaluate`` is an optional callback
(the CLI passes one that runs episodes in simulation; policies/ imports nothing of ours).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from policies.augment import augment_batch
from policies.data import ChunkDataset, check_dataset_folder, make_dataloader, normalization_stats
from policies.train_config import TrainConfig
from policies.vla.checkpoint import check_checkpoint, load_checkpoint, save_checkpoint
from policies.vla.model import VLA

logger = logging.getLogger(__name__)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _merged_stats(datasets: list[ChunkDataset]) -> dict[str, dict[str, np.ndarray]]:
    """Count-weighted mean/std over several datasets' state and action stats."""
    parts = [(normalization_stats(d.reader), d.reader.num_frames) for d in datasets]
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in ("observation.state", "action"):
        n = np.array([c for _, c in parts], dtype=np.float64)
        means = np.stack([s[key]["mean"] for s, _ in parts]).astype(np.float64)
        vars_ = np.stack([s[key]["std"] for s, _ in parts]).astype(np.float64) ** 2
        mean = (n[:, None] * means).sum(0) / n.sum()
        var = (n[:, None] * (vars_ + (means - mean) ** 2)).sum(0) / n.sum()
        out[key] = {"mean": mean.astype(np.float32), "std": np.sqrt(var).astype(np.float32)}
    return out


def _save_optimizer(path: Path, opt: torch.optim.Optimizer, step: int) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    (path.parent / "trainer.json").write_text(json.dumps({"step": step}))


def _load_optimizer(path: Path, opt: torch.optim.Optimizer) -> None:
    tensors = load_file(str(path))
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, v in tensors.items():
        pid, k = name.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    evaluate: Callable[[Path, int], dict] | None = None,
    log: Callable[[str], object] = logger.info,
    progress: bool = True,
) -> Path:
    """Train; returns the last checkpoint's folder. Progress lines go to ``log`` (this module's logger, at INFO)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir)
    last = out / "last"
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output_dir {out} is a file: choose a folder")
    if out.exists() and any(out.iterdir()) and not resume:
        raise FileExistsError(f"{out} is not empty: pass --resume to continue that run, or choose another --output_dir")
    for root in cfg.datasets:  # before anything is written: a wrong path leaves no empty output_dir behind
        check_dataset_folder(root)
    if cfg.init_from and not (resume and last.exists()):
        check_checkpoint(cfg.init_from)

    t0 = time.monotonic()
    chunk = cfg.model.chunk_size
    keys = [f"observation.images.{c}" for c in cfg.model.cameras]
    datasets = [ChunkDataset(root, chunk, image_keys=keys) for root in cfg.datasets]
    data = datasets[0] if len(datasets) == 1 else torch.utils.data.ConcatDataset(datasets)
    n_items = sum(len(d) for d in datasets)
    log(f"data: {len(datasets)} dataset(s), {n_items} frames, decoded in {time.monotonic() - t0:.1f} s")

    from policies.text import default_encoder

    encoder = default_encoder()
    tasks = {t for d in datasets for t in d.reader.tasks}
    groups = cfg.augment.paraphrase_table()
    if groups:
        covered = sorted(t for t in tasks if t in groups)
        log(f"paraphrases: {len(covered)} of the data's {len(tasks)} instructions have interchangeable phrasings")
        tasks |= {p for t in covered for p in groups[t]}
    table = {t: torch.from_numpy(np.array(encoder.embed(t))) for t in sorted(tasks)}  # instruction -> (384,)

    if resume and last.exists():
        model, model_cfg, stats = load_checkpoint(last)
        if model_cfg != cfg.model:
            raise ValueError(
                f"--resume: the checkpoint's model config differs from this run's:\n{model_cfg}\n{cfg.model}"
            )
        step = json.loads((last / "trainer.json").read_text())["step"]
    elif cfg.init_from:
        model, model_cfg, stats = load_checkpoint(cfg.init_from)
        if model_cfg != cfg.model:
            raise ValueError(
                f"--init_from {cfg.init_from}: its model config differs from this run's:\n{model_cfg}\n{cfg.model}"
            )
        log(f"weights and normalisation statistics from {cfg.init_from}")
        step = 0
    else:
        stats = _merged_stats(datasets)
        model = VLA(cfg.model, stats)
        step = 0
    model.train()
    # fused: one kernel per step instead of ~10 per parameter tensor (the unfused update was ~10 % of a CPU step)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if resume and (last / "optimizer.safetensors").exists():
        _load_optimizer(last / "optimizer.safetensors", opt)
    out.mkdir(parents=True, exist_ok=True)  # only now that the data and the weights have loaded
    (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    log(f"model: {model.num_parameters() / 1e6:.2f} M parameters; {'resuming at' if step else 'starting'} step {step}")

    loader = make_dataloader(data, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed + step)
    generator = torch.Generator().manual_seed(cfg.seed + 7919 * (step + 1))  # augmentation draws
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    losses: list[float] = []
    ckpt = last
    while step < cfg.steps:
        for batch in loader:
            if step >= cfg.steps:
                break
            batch = augment_batch(batch, cfg.augment, keys, generator)
            batch["task_embedding"] = torch.stack([table[t] for t in batch["task"]])  # (B,384)
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
                loss, _ = model.compute_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-cfg.log_every :]):.4f}")
            if step % cfg.log_every == 0 and bar is None:
                log(f"step {step}: loss {np.mean(losses[-cfg.log_every :]):.4f}")
            if step % cfg.save_every == 0 or step == cfg.steps:
                ckpt = _checkpoint(out, model, cfg, stats, opt, step)
            if evaluate is not None and cfg.eval_every and step % cfg.eval_every == 0:
                if ckpt.name != str(step):
                    ckpt = _checkpoint(out, model, cfg, stats, opt, step)
                model.eval()
                report = evaluate(ckpt, step)
                model.train()
                log(f"eval at step {step}: {json.dumps(report)}")
    if bar is not None:
        bar.close()
    (out / "losses.json").write_text(json.dumps({"step_end": step, "loss_tail": losses[-200:]}))
    log(f"done: {step} steps in {time.monotonic() - t0:.0f} s; last checkpoint {ckpt}")
    return ckpt


def _checkpoint(out: Path, model: VLA, cfg: TrainConfig, stats, opt, step: int) -> Path:
    folder = out / "checkpoints" / str(step)
    save_checkpoint(folder, model, cfg.model, stats)
    _save_optimizer(folder / "optimizer.safetensors", opt, step)
    # `last` is a copy of the newest checkpoint folder (a symlink would do on Linux, a copy works everywhere)
    tmp = out / ".last.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(folder, tmp)
    if (out / "last").exists():
        shutil.rmtree(out / "last")
    os.replace(tmp, out / "last")
    return folder
