"""Training the small VLA: `onboard train` (CPU, or a GPU with ``device="cuda"``).

One or more LeRobot v3.0 datasets (any camera names and sizes: ``rename_map`` maps their features onto the model's,
frames are resized to the model's input when decoded) -> ``ChunkDataset`` (frames decoded once and cached) -> the VLA
with an L1 loss on normalised action chunks, AdamW with warm-up and cosine decay. Instruction embeddings come from the
frozen sentence encoder, computed once per distinct instruction. Checkpoints follow LeRobot's layout
(policies/checkpoints.py): every ``save_freq`` steps and after the last, ``checkpoints/<step:06d>/pretrained_model/``
(safetensors + JSON, no pickle) and ``training_state/`` (step, optimizer), written whole to a temporary folder,
renamed into place, then ``checkpoints/last`` moved to it; ``resume`` continues where a killed run stopped.
``evaluate`` is an optional callback (the CLI passes one that runs episodes in simulation; policies/ imports nothing
of ours), called every ``eval_freq`` steps with the checkpoint of that step.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from policies import checkpoints as layout
from policies.augment import augment_batch
from policies.data import ChunkDataset, make_dataloader
from policies.ema import WeightAverage
from policies.errors import DatasetFeaturesError, DatasetFolderError
from policies.features import IMAGES, check_dataset_fits, check_dataset_folder
from policies.train_config import TrainConfig
from policies.vla.checkpoint import check_checkpoint, load_checkpoint, save_checkpoint
from policies.vla.model import VLA

logger = logging.getLogger(__name__)


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def optimizer_step(
    model: VLA, opt: torch.optim.Optimizer, batch: dict, *, bf16: bool, grad_clip: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """One training step on ``batch``: the L1 loss (under bfloat16 autocast if ``bf16``), backward, the gradient norm
    clipped to ``grad_clip``, the optimizer's update. Returns the loss and its parts (``VLA.compute_loss``'s logs).
    (`onboard bench train` times this.)"""
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        loss, parts = model.compute_loss(batch)  # the model moves the batch to its device
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss, parts


def _first(root: Path, n: int | None) -> list[int] | None:
    """The first ``n`` episode indices of the dataset at ``root`` (None: all of them)."""
    if n is None:
        return None
    total = json.loads((root / "meta" / "info.json").read_text())["total_episodes"]
    return list(range(min(n, int(total))))


def _merged_stats(datasets: list[ChunkDataset]) -> dict[str, dict[str, np.ndarray]]:
    """Count-weighted mean/std over several datasets' state and action stats."""
    parts = [(d.normalization_stats(), d.reader.num_frames) for d in datasets]
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in ("observation.state", "action"):
        n = np.array([c for _, c in parts], dtype=np.float64)
        means = np.stack([s[key]["mean"] for s, _ in parts]).astype(np.float64)
        vars_ = np.stack([s[key]["std"] for s, _ in parts]).astype(np.float64) ** 2
        mean = (n[:, None] * means).sum(0) / n.sum()
        var = (n[:, None] * (vars_ + (means - mean) ** 2)).sum(0) / n.sum()
        out[key] = {"mean": mean.astype(np.float32), "std": np.sqrt(var).astype(np.float32)}
    return out


def _save_training_state(folder: Path, opt: torch.optim.Optimizer, step: int) -> None:
    """LeRobot's ``training_state/``: training_step.json and the optimizer's tensors (safetensors)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
    layout.write_synced(folder / layout.OPTIMIZER_STATE, save(tensors))
    layout.write_synced(folder / layout.TRAINING_STEP, json.dumps({"step": step}).encode())


def _load_optimizer(path: Path, opt: torch.optim.Optimizer) -> None:
    tensors = load_file(str(path))
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, v in tensors.items():
        pid, k = name.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)  # moves the state to each parameter's device


def _resume_state(checkpoint: Path) -> tuple[int, Path | None]:
    """(step, optimizer file or None) of a run's checkpoint folder (or the older layout's last/)."""
    state = checkpoint / layout.TRAINING_STATE_DIR
    if (state / layout.TRAINING_STEP).is_file():
        step = json.loads((state / layout.TRAINING_STEP).read_text())["step"]
        opt = state / layout.OPTIMIZER_STATE
    else:  # the layout before LeRobot's: trainer.json and optimizer.safetensors beside the weights
        step = json.loads((checkpoint / "trainer.json").read_text())["step"]
        opt = checkpoint / "optimizer.safetensors"
    return int(step), opt if opt.is_file() else None


def _device(name: str) -> torch.device:
    """``name`` as a torch device, after checking that torch has it (a ``ValueError`` that says what to pass)."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
            raise ValueError(
                f"--policy.device={name}: torch {torch.__version__} ({built}) sees no CUDA GPU; train on the CPU with "
                "--policy.device=cpu, or install a CUDA build of torch on a machine with an NVIDIA GPU"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--policy.device={name}: torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def check_datasets(cfg: TrainConfig) -> tuple[Path, ...]:
    """The dataset folders of ``cfg``, each checked to be a dataset that fits the model under ``cfg.rename_map``
    (``DatasetFolderError`` / ``DatasetFeaturesError`` naming it otherwise). Reads only meta/info.json."""
    roots = cfg.dataset_roots()
    renames = cfg.renames
    features: list[dict] = []
    for root, repo_id in zip(roots, cfg.repo_ids or [None] * len(roots), strict=True):
        if repo_id is not None and not cfg.datasets and not root.exists():
            raise DatasetFolderError(
                f"--dataset.repo_id {repo_id}: no dataset at {root} ($HF_LEROBOT_HOME/<repo_id>); onboard train reads "
                "local datasets: download it first (`hf download --repo-type dataset "
                f"{repo_id} --local-dir {root}`) or give its folder with --dataset.root"
            )
        check_dataset_folder(root)
        info = json.loads((root / "meta" / "info.json").read_text())
        features.append(info["features"])
        check_dataset_fits(
            root,
            cameras=cfg.model.cameras,
            rename=renames,
            state_dim=cfg.model.state_dim,
            action_dim=cfg.model.action_dim,
            features=info["features"],
        )
    unused = [k for k in renames if not any(k in f for f in features)]
    if unused:
        raise DatasetFeaturesError(
            f"--rename_map renames {', '.join(unused)}, which no dataset has (features of {roots[0]}: "
            f"{', '.join(features[0])})"
        )
    return roots


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    evaluate: Callable[[Path, int], dict] | None = None,
    log: Callable[[str], object] = logger.info,
    progress: bool = True,
) -> Path:
    """Train; returns the newest checkpoint's folder (``<output_dir>/checkpoints/<step>``; the policy is in its
    ``pretrained_model/``). Progress lines go to ``log`` (this module's logger, at INFO). ``cfg.output_dir`` None:
    ``cfg.default_output_dir()``."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.output_dir) if cfg.output_dir else cfg.default_output_dir()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--output_dir {out} is a file: choose a folder")
    if out.exists() and any(out.iterdir()) and not resume:
        raise FileExistsError(f"{out} is not empty: pass --resume to continue that run, or choose another --output_dir")
    # before anything is written: a wrong path or a dataset that does not fit leaves no empty output_dir behind
    roots = check_datasets(cfg)
    device = _device(cfg.device)
    latest = layout.latest_checkpoint(out) if resume else None
    if cfg.init_from and latest is None:
        check_checkpoint(cfg.init_from)

    t0 = time.monotonic()
    chunk = cfg.model.chunk_size
    keys = [IMAGES + c for c in cfg.model.cameras]
    size = cfg.model.image_size
    datasets = [
        ChunkDataset(
            r, chunk, image_keys=keys, rename=cfg.renames, image_size=size, episodes=_first(r, cfg.max_episodes)
        )
        for r in roots
    ]
    data = datasets[0] if len(datasets) == 1 else torch.utils.data.ConcatDataset(datasets)
    n_items = sum(len(d) for d in datasets)
    log(f"data: {len(datasets)} dataset(s), {n_items} frames, decoded in {time.monotonic() - t0:.1f} s")
    for d in datasets:
        shapes = {k: d.reader.camera_shape(d.source[k])[:2] for k in keys}
        if any(hw != (size, size) for hw in shapes.values()) or d.rename:
            seen = ", ".join(f"{d.source[k]} {w}x{h} -> {k} {size}x{size}" for k, (h, w) in shapes.items())
            log(f"{d.reader.root}: {seen}")

    from policies.text import default_encoder

    encoder = default_encoder()
    tasks = {t for d in datasets for t in d.reader.tasks}
    groups = cfg.augment.paraphrase_table()
    if groups:
        covered = sorted(t for t in tasks if t in groups)
        log(f"paraphrases: {len(covered)} of the data's {len(tasks)} instructions have interchangeable phrasings")
        tasks |= {p for t in covered for p in groups[t]}
    table = {t: torch.from_numpy(np.array(encoder.embed(t))) for t in sorted(tasks)}  # instruction -> (384,)

    if latest is not None:
        model, model_cfg, stats = load_checkpoint(latest, device=str(device))
        if model_cfg != cfg.model:
            raise ValueError(
                f"--resume: the checkpoint's model config differs from this run's:\n{model_cfg}\n{cfg.model}"
            )
        step, opt_file = _resume_state(latest)
    elif cfg.init_from:
        model, model_cfg, stats = load_checkpoint(cfg.init_from, device=str(device))
        if model_cfg != cfg.model:
            raise ValueError(
                f"--init_from {cfg.init_from}: its model config differs from this run's:\n{model_cfg}\n{cfg.model}"
            )
        log(f"weights and normalisation statistics from {cfg.init_from}")
        step, opt_file = 0, None
    else:
        stats = _merged_stats(datasets)
        model = VLA(cfg.model, stats).to(device)
        step, opt_file = 0, None
    model.train()
    # fused: one kernel per step instead of ~10 per parameter tensor (the unfused update was ~10 % of a CPU step)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if opt_file is not None:
        _load_optimizer(opt_file, opt)
    average = None
    if cfg.ema_decay:
        # resumed: the checkpoint's policy is the average, and the weights being trained are in its training state
        average = WeightAverage(model, cfg.ema_decay, updates=step)
        trained = latest / layout.TRAINING_STATE_DIR / layout.TRAINED_WEIGHTS if latest is not None else None
        if trained is not None and trained.is_file():
            model.load_state_dict(load_file(str(trained), device=str(device)))
        log(f"weight average: decay {cfg.ema_decay} (the saved policy is the average)")
    out.mkdir(parents=True, exist_ok=True)  # only now that the data and the weights have loaded
    (out / layout.TRAIN_CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2))
    log(f"output: {out}")
    log(
        f"model: {model.num_parameters() / 1e6:.2f} M parameters on {device}; "
        f"{'resuming at' if step else 'starting'} step {step}"
    )

    loader = make_dataloader(
        data, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed + step, pin_memory=device.type == "cuda"
    )
    generator = torch.Generator().manual_seed(cfg.seed + 7919 * (step + 1))  # augmentation draws
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    losses: list[float] = []
    subgoal: list[float] = []  # the subgoal loss's part, with --model.subgoal_weight
    ckpt, saved = latest, step  # the newest checkpoint and its step
    while step < cfg.steps:
        for batch in loader:
            if step >= cfg.steps:
                break
            batch = augment_batch(batch, cfg.augment, keys, generator)
            batch["task_embedding"] = torch.stack([table[t] for t in batch["task"]])  # (B,384)
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            loss, parts = optimizer_step(model, opt, batch, bf16=cfg.amp == "bf16", grad_clip=cfg.grad_clip)
            if average is not None:
                average.update(model)
            step += 1
            losses.append(float(loss.detach()))
            if "subgoal_l1" in parts:
                subgoal.append(parts["subgoal_l1"])
            shown = None  # the mean losses, shown on the bar every 10 steps (each showing writes the bar out)
            if step % cfg.log_freq == 0 or (bar is not None and step % 10 == 0):
                shown = {"loss": f"{np.mean(losses[-cfg.log_freq :]):.4f}"}
                if subgoal:
                    shown["subgoal"] = f"{np.mean(subgoal[-cfg.log_freq :]):.4f}"
            if bar is not None:
                if shown is not None:
                    bar.set_postfix(shown, refresh=False)
                bar.update(1)
            elif shown is not None:
                log(f"step {step}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
            if step % cfg.save_freq == 0 or step == cfg.steps:
                ckpt, saved = _checkpoint(out, model, cfg, stats, opt, step, average), step
            if evaluate is not None and cfg.eval_freq and step % cfg.eval_freq == 0:
                if saved != step:
                    ckpt, saved = _checkpoint(out, model, cfg, stats, opt, step, average), step
                model.eval()
                report = evaluate(ckpt, step)
                model.train()
                log(f"eval at step {step}: {json.dumps(report)}")
    if bar is not None:
        bar.close()
    (out / "losses.json").write_text(json.dumps({"step_end": step, "loss_tail": losses[-200:]}))
    log(f"done: {step} steps in {time.monotonic() - t0:.0f} s; last checkpoint {ckpt / layout.PRETRAINED_DIR}")
    assert ckpt is not None  # saved at step == cfg.steps at the latest, or resumed from one
    return ckpt


def _checkpoint(
    out: Path, model: VLA, cfg: TrainConfig, stats, opt, step: int, average: WeightAverage | None = None
) -> Path:
    """``<out>/checkpoints/<step>/`` (pretrained_model/ + training_state/), written whole in a temporary folder and
    renamed into place; then ``checkpoints/last`` points at it. With a weight average (``--ema_decay``) the policy
    is the average, and the weights being trained go in the training state (``--resume`` needs both)."""
    name = layout.step_name(step, cfg.steps)
    staged = layout.staging_folder(out, name)
    policy = staged / layout.PRETRAINED_DIR
    save_checkpoint(policy, average.module if average is not None else model, cfg.model, stats)
    layout.write_synced(policy / layout.TRAIN_CONFIG, json.dumps(cfg.to_dict(), indent=2).encode())
    _save_training_state(staged / layout.TRAINING_STATE_DIR, opt, step)
    if average is not None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        layout.write_synced(staged / layout.TRAINING_STATE_DIR / layout.TRAINED_WEIGHTS, save(tensors))
    return layout.publish(staged, name)
