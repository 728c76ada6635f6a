"""The project's small VLA: two cameras + joint state + instruction embedding -> a chunk of future actions.

    images (B,3,H,W) per camera --shared conv net, FiLM'd by the instruction--> (B, K*S*S, d) spatial tokens
    [text token, state token, image tokens] --transformer encoder--> memory (B, 2+K*S*S, d)
    T learned action queries --transformer decoder (self-attn, cross-attn over memory)--> (B,T,d) --linear--> (B,T,A)

ACT-style: L1 loss on normalised actions, padded steps masked. With ``subgoal_weight`` > 0 one more query follows
the T action queries; its output predicts the joint state at the episode's next subgoal
(``policies.data.subgoal_rows``), an auxiliary L1 term in training; the exported model outputs the actions alone.
State and action normalisation use dataset mean/std
held as buffers, so the model takes and returns LeRobot units (degrees, gripper 0-100). The text encoder
(all-MiniLM-L6-v2, `policies.text`) is frozen and outside the model: the model takes its 384-d embedding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from policies.vla.config import VLAConfig

Batch = Mapping[str, Any]


def _groups(c: int) -> int:
    return 8 if c % 8 == 0 else 1


class ConvStage(nn.Module):
    """Stride-2 conv, then a residual 3x3 conv whose normalised features are modulated by the text (FiLM);
    ``residual=False``: the stride-2 conv alone (a cheaper early stage)."""

    def __init__(self, c_in: int, c_out: int, text_dim: int, residual: bool = True):
        super().__init__()
        self.down = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(c_out), c_out)
        self.residual = residual
        if residual:
            self.conv = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
            self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
            self.film = nn.Linear(text_dim, 2 * c_out)  # zero-initialised: starts as the identity modulation

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.down(x)))  # (N,C,H/2,W/2)
        if not self.residual:
            return x
        gamma, beta = self.film(text).chunk(2, dim=-1)  # (N,C), (N,C)
        h = self.norm2(self.conv(x)) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]  # (N,C,H/2,W/2)
        return x + F.gelu(h)  # (N,C,H/2,W/2)


class Attention(nn.Module):
    def __init__(self, d: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape  # queries (B,L,D); ctx (B,M,D)
        h = self.n_heads
        q = self.q(x).view(B, L, h, D // h).transpose(1, 2)  # (B,h,L,D/h)
        k, v = self.kv(ctx).split(D, dim=-1)  # (B,M,D) each
        k = k.view(B, -1, h, D // h).transpose(1, 2)  # (B,h,M,D/h)
        v = v.view(B, -1, h, D // h).transpose(1, 2)  # (B,h,M,D/h)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (B,h,L,D/h)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))  # (B,L,D)


class MLP(nn.Module):
    def __init__(self, d: int, mult: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(d, mult * d)
        self.out = nn.Linear(mult * d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.out(F.gelu(self.fc(x))))  # (B,L,D)


class Block(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention over a memory, MLP."""

    def __init__(self, cfg: VLAConfig, cross: bool):
        super().__init__()
        d = cfg.d_model
        self.ln1, self.attn = nn.LayerNorm(d), Attention(d, cfg.n_heads, cfg.dropout)
        self.ln_x = nn.LayerNorm(d) if cross else None
        self.xattn = Attention(d, cfg.n_heads, cfg.dropout) if cross else None
        self.ln2, self.mlp = nn.LayerNorm(d), MLP(d, cfg.ffn_mult, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln1(x)  # (B,L,D)
        x = x + self.drop(self.attn(h, h))  # (B,L,D)
        if self.xattn is not None:
            x = x + self.drop(self.xattn(self.ln_x(x), memory))  # (B,L,D), memory (B,M,D)
        return x + self.mlp(self.ln2(x))  # (B,L,D)


class VLA(nn.Module):
    def __init__(self, config: VLAConfig, stats: Mapping[str, Mapping[str, Any]] | None = None):
        super().__init__()
        cfg = self.config = config
        d, K, S = cfg.d_model, len(cfg.cameras), cfg.feature_size
        chans = (3, *cfg.conv_channels)
        self.stages = nn.ModuleList(
            ConvStage(chans[i], chans[i + 1], cfg.text_dim, residual=i >= cfg.plain_stages)
            for i in range(len(chans) - 1)
        )
        self.img_proj = nn.Conv2d(chans[-1], d, 1)  # features -> tokens
        self.pos_emb = nn.Parameter(torch.zeros(S * S, d))  # (S*S,d) spatial position
        self.cam_emb = nn.Parameter(torch.zeros(K, d))  # (K,d) which camera
        self.text_proj = nn.Linear(cfg.text_dim, d)
        self.state_proj = nn.Linear(cfg.state_dim, d)
        self.type_emb = nn.Parameter(torch.zeros(2, d))  # text token, state token
        self.encoder = nn.ModuleList(Block(cfg, cross=False) for _ in range(cfg.n_encoder_layers))
        self.ln_mem = nn.LayerNorm(d)
        self.queries = nn.Parameter(torch.zeros(cfg.chunk_size, d))  # (T,d) learned action queries
        self.decoder = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.n_decoder_layers))
        self.ln_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.action_dim)
        if cfg.subgoal_weight > 0:  # training-time auxiliary: one more query, read out as the next subgoal's state
            self.subgoal_query = nn.Parameter(torch.zeros(1, d))  # (1,d)
            self.subgoal_head = nn.Linear(d, cfg.state_dim)
        self.register_buffer("state_mean", torch.zeros(cfg.state_dim))
        self.register_buffer("state_std", torch.ones(cfg.state_dim))
        self.register_buffer("action_mean", torch.zeros(cfg.action_dim))
        self.register_buffer("action_std", torch.ones(cfg.action_dim))
        self.text_encoder = None  # a policies.text.SentenceEncoder; None -> the process-wide default
        self.apply(self._init_weights)
        for p in (self.pos_emb, self.cam_emb, self.type_emb, self.queries):
            nn.init.normal_(p, std=0.02)
        if cfg.subgoal_weight > 0:
            nn.init.normal_(self.subgoal_query, std=0.02)
        for stage in self.stages:
            if stage.residual:
                nn.init.zeros_(stage.film.weight)
                nn.init.zeros_(stage.film.bias)
        if stats is not None:
            self.set_stats(stats)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Dataset stats in LeRobot's layout: stats["observation.state"|"action"]["mean"|"std"] (arrays of N)."""
        for key, prefix, n in (
            ("observation.state", "state", self.config.state_dim),
            ("action", "action", self.config.action_dim),
        ):
            if key not in stats:
                raise KeyError(f"stats need '{key}' with 'mean' and 'std' (LeRobot's meta/stats.json layout)")
            for stat in ("mean", "std"):
                value = torch.as_tensor(np.asarray(stats[key][stat], dtype=np.float32)).reshape(-1)  # (N,)
                if value.numel() != n:
                    raise ValueError(f"stats['{key}']['{stat}'] has {value.numel()} values, the config says {n}")
                getattr(self, f"{prefix}_{stat}").copy_(value)

    # -- tensors in, tensors out (what ONNX exports) --------------------------------------------------------------

    def forward(self, state: torch.Tensor, images: list[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        """state (B,S) LeRobot units, images K x (B,3,H,W) in [0,1], text (B,384) -> normalised actions (B,T,A)."""
        return self._decode(state, images, text)[0]

    def _decode(
        self, state: torch.Tensor, images: list[torch.Tensor], text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward``'s actions (B,T,A), and the normalised subgoal state (B,S) (None without ``subgoal_weight``)."""
        cfg = self.config
        B, K = state.shape[0], len(images)
        x = torch.cat(images, dim=0)  # (K*B,3,H,W), camera-major
        if x.shape[-2:] != (cfg.image_size, cfg.image_size):
            x = F.interpolate(x, size=(cfg.image_size, cfg.image_size), mode="bilinear", align_corners=False)
        x = x * 2 - 1  # (K*B,3,H,W) in [-1,1]
        t = text.repeat(K, 1)  # (K*B,384), same camera-major order
        for stage in self.stages:
            x = stage(x, t)  # (K*B,C,H',W')
        x = self.img_proj(x).flatten(2).transpose(1, 2)  # (K*B,S*S,d)
        x = x + self.pos_emb  # (K*B,S*S,d)
        x = x.view(K, B, -1, cfg.d_model) + self.cam_emb[:, None, None, :]  # (K,B,S*S,d)
        img_tokens = x.permute(1, 0, 2, 3).reshape(B, -1, cfg.d_model)  # (B,K*S*S,d)
        s = self.normalize_state(state)  # (B,S) normalised
        text_tok = self.text_proj(text) + self.type_emb[0]  # (B,d)
        state_tok = self.state_proj(s) + self.type_emb[1]  # (B,d)
        memory = torch.cat([text_tok[:, None], state_tok[:, None], img_tokens], dim=1)  # (B,2+K*S*S,d)
        for block in self.encoder:
            memory = block(memory)  # (B,M,d)
        memory = self.ln_mem(memory)  # (B,M,d)
        queries = self.queries if cfg.subgoal_weight <= 0 else torch.cat([self.queries, self.subgoal_query])
        q = queries.expand(B, -1, -1)  # (B,T,d) or (B,T+1,d) with the subgoal query last
        for block in self.decoder:
            q = block(q, memory)  # (B,T(+1),d)
        q = self.ln_out(q)  # (B,T(+1),d)
        T = cfg.chunk_size
        actions = self.head(q[:, :T])  # (B,T,A) normalised actions
        subgoal = self.subgoal_head(q[:, T]) if cfg.subgoal_weight > 0 else None  # (B,S) normalised state
        return actions, subgoal

    def unnormalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return a * self.action_std.clamp(min=self.config.std_min) + self.action_mean  # (...,A) LeRobot units

    def normalize_action(self, a: torch.Tensor) -> torch.Tensor:
        return (a - self.action_mean) / self.action_std.clamp(min=self.config.std_min)  # (...,A) normalised

    # -- batches (dicts with LeRobot feature names) ---------------------------------------------------------------

    def task_embedding(self, batch: Batch) -> torch.Tensor:
        """(B,384) from batch["task_embedding"], or from batch["task"] (list of str) through the frozen encoder."""
        if "task_embedding" in batch:
            return torch.as_tensor(batch["task_embedding"], dtype=torch.float32, device=self.state_mean.device)
        if "task" not in batch:
            raise KeyError("a batch needs 'task' (list of instruction strings) or 'task_embedding' (B,384)")
        tasks = batch["task"]
        tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        if self.text_encoder is None:
            from policies.text import default_encoder

            self.text_encoder = default_encoder()
        return torch.from_numpy(self.text_encoder.encode(tasks)).to(self.state_mean.device)  # (B,384)

    def _inputs(self, batch: Batch) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        dev = self.state_mean.device
        state = torch.as_tensor(batch["observation.state"], device=dev).float()  # (B,S)
        images = []
        for cam in self.config.cameras:
            img = torch.as_tensor(batch[f"observation.images.{cam}"], device=dev)  # (B,3,H,W)
            images.append(img.float() / 255.0 if img.dtype == torch.uint8 else img.float())  # (B,3,H,W) in [0,1]
        return state, images, self.task_embedding(batch)

    def predict(self, batch: Batch) -> torch.Tensor:
        """(B,T,A) actions in LeRobot units."""
        return self.unnormalize_action(self(*self._inputs(batch)))

    def normalize_state(self, s: torch.Tensor) -> torch.Tensor:
        return (s - self.state_mean) / self.state_std.clamp(min=self.config.std_min)  # (...,S) normalised

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """ACT's L1 loss on normalised actions; steps with action_is_pad=True are ignored. With ``subgoal_weight``,
        plus that weight times the L1 error of the predicted subgoal state (batch["subgoal.state"], normalised)."""
        pred, subgoal = self._decode(*self._inputs(batch))  # (B,T,A) normalised, (B,S) or None
        target = self.normalize_action(torch.as_tensor(batch["action"], device=pred.device).float())  # (B,T,A)
        if target.shape != pred.shape:
            raise ValueError(f"batch['action'] has shape {tuple(target.shape)}, the model predicts {tuple(pred.shape)}")
        pad = batch.get("action_is_pad")
        valid = (
            torch.ones(pred.shape[:2], device=pred.device)
            if pad is None
            else (~torch.as_tensor(pad, device=pred.device)).float()
        )  # (B,T)
        l1 = (pred - target).abs() * valid[..., None]  # (B,T,A)
        loss = l1.sum() / (valid.sum() * pred.shape[-1]).clamp(min=1.0)
        logs = {"l1": float(loss.detach())}
        if subgoal is not None:
            if "subgoal.state" not in batch:
                raise KeyError(
                    "subgoal_weight > 0 needs batch['subgoal.state'] (policies.data.ChunkDataset gives it); "
                    "train with --model.subgoal_weight 0 on data without it"
                )
            goal = self.normalize_state(torch.as_tensor(batch["subgoal.state"], device=pred.device).float())  # (B,S)
            sub = (subgoal - goal).abs().mean()
            logs["subgoal_l1"] = float(sub.detach())
            loss = loss + self.config.subgoal_weight * sub
        return loss, logs

    @torch.no_grad()
    def predict_chunk(self, observation: Batch) -> np.ndarray:
        """One observation (state (S,), images HxWx3 or 3xHxW uint8, task str) -> (T, A) float32 in LeRobot units."""
        batch: dict[str, Any] = {"observation.state": np.asarray(observation["observation.state"], np.float32)[None]}
        for cam in self.config.cameras:
            img = np.asarray(observation[f"observation.images.{cam}"])
            if img.ndim == 3 and img.shape[-1] == 3 and img.shape[0] != 3:
                img = img.transpose(2, 0, 1)  # HWC -> CHW
            batch[f"observation.images.{cam}"] = np.ascontiguousarray(img)[None]  # (1,3,H,W)
        if "task_embedding" in observation:
            batch["task_embedding"] = np.asarray(observation["task_embedding"], np.float32).reshape(1, -1)
        else:
            batch["task"] = [observation["task"]]
        was_training = self.training
        self.eval()
        try:
            return self.predict(batch)[0].cpu().numpy().astype(np.float32)
        finally:
            self.train(was_training)


def fake_batch(config: VLAConfig, batch_size: int = 2, seed: int = 0, with_text: bool = False) -> dict[str, Any]:
    """Random inputs with the dataloader's keys and shapes, for CPU smoke tests (no dataset, no text encoder)."""
    g = torch.Generator().manual_seed(seed)
    B, T, H = batch_size, config.chunk_size, config.image_size
    batch: dict[str, Any] = {
        "observation.state": torch.randn(B, config.state_dim, generator=g) * 30,  # (B,S) degrees
        "action": torch.randn(B, T, config.action_dim, generator=g) * 30,  # (B,T,A)
        "action_is_pad": torch.zeros(B, T, dtype=torch.bool),  # (B,T)
        "task_embedding": F.normalize(torch.randn(B, config.text_dim, generator=g), dim=-1),  # (B,384) unit norm
    }
    batch["action_is_pad"][:, T - max(1, T // 5) :] = True  # the tail of each chunk ran past the episode end
    if config.subgoal_weight > 0:  # the state at the next subgoal (policies.data.subgoal_rows), degrees
        batch["subgoal.state"] = torch.randn(B, config.state_dim, generator=g) * 30
    for cam in config.cameras:
        batch[f"observation.images.{cam}"] = torch.randint(0, 256, (B, 3, H, H), generator=g, dtype=torch.uint8)
    if with_text:  # instruction strings instead of precomputed embeddings (needs the text encoder)
        del batch["task_embedding"]
        batch["task"] = [
            ("pick up the red cube", "open the drawer", "push the blue block left")[i % 3] for i in range(B)
        ]
    return batch
