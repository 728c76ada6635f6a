"""Configuration of the project's small VLA (vision-language-action) policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _opt(default: Any, help: str) -> Any:
    """A config field with its help (the command line is derived from these, see onboard/cli/options.py)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class VLAConfig:
    """Two RGB cameras + joint state + an instruction embedding -> a chunk of future actions.

    Defaults give ~1.6 M trainable parameters (CPU-trainable); the text encoder (all-MiniLM-L6-v2) is frozen and
    lives outside the model, which takes its 384-d embedding as an input.
    """

    cameras: tuple[str, ...] = _opt(("front", "wrist"), "camera names: observation.images.<camera> (repeatable)")
    image_size: int = _opt(96, "square images, px; other sizes are resized inside the model")
    state_dim: int = _opt(6, "joint state size")
    action_dim: int = _opt(6, "action size")
    chunk_size: int = _opt(20, "future actions per chunk (at 30 Hz, 20 = 0.67 s)")
    text_dim: int = _opt(384, "instruction embedding size")
    conv_channels: tuple[int, ...] = _opt(
        (32, 64, 96, 128), "channels of the stride-2 conv stages: 96 -> 48 -> 24 -> 12 -> 6 px (repeatable)"
    )
    plain_stages: int = _opt(
        0,
        "the first N conv stages without their residual 3x3 conv and FiLM (0: every stage has them); the first "
        "stage's residual conv, at 48 px, is about half of the conv net's arithmetic",
    )
    d_model: int = _opt(128, "transformer width")
    n_heads: int = _opt(4, "attention heads")
    n_encoder_layers: int = _opt(2, "transformer encoder layers")
    n_decoder_layers: int = _opt(2, "transformer decoder layers")
    ffn_mult: int = _opt(4, "feed-forward width / d_model")
    dropout: float = _opt(0.1, "dropout")
    subgoal_weight: float = _opt(
        0.0,
        "weight of an auxiliary loss (0: off, and the model has no extra parameters): one more decoder query "
        "predicts the joint state at the episode's next subgoal (the next time the gripper command crosses its "
        "mid-range, e.g. the grasp, or the episode's end), which makes the vision find the instructed object",
    )
    std_min: float = _opt(1e-3, "floor on the dataset std when normalising (a joint that never moved must not blow up)")

    def __post_init__(self):
        if isinstance(self.cameras, list):
            object.__setattr__(self, "cameras", tuple(self.cameras))
        if isinstance(self.conv_channels, list):
            object.__setattr__(self, "conv_channels", tuple(self.conv_channels))
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct names, e.g. ('front', 'wrist'); got {self.cameras}")
        for name in ("image_size", "state_dim", "action_dim", "chunk_size", "text_dim", "d_model", "n_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels must be positive channel counts, got {self.conv_channels}")
        if self.image_size % (2 ** len(self.conv_channels)) != 0:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**len(conv_channels) = "
                f"{2 ** len(self.conv_channels)} (each conv stage halves the image); change one of them"
            )
        if not 0 <= self.plain_stages < len(self.conv_channels):
            raise ValueError(
                f"plain_stages must be in [0, {len(self.conv_channels)}) (a later stage must take the instruction), "
                f"got {self.plain_stages}"
            )
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.n_encoder_layers < 0 or self.n_decoder_layers < 1:
            raise ValueError("need n_encoder_layers >= 0 and n_decoder_layers >= 1")
        if self.ffn_mult < 1:
            raise ValueError(f"ffn_mult must be >= 1, got {self.ffn_mult}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.subgoal_weight < 0:
            raise ValueError(f"subgoal_weight must be >= 0, got {self.subgoal_weight}")
        if self.std_min <= 0:
            raise ValueError(f"std_min must be > 0, got {self.std_min}")

    @property
    def feature_size(self) -> int:
        """Side of the spatial feature map per camera (tokens per camera = feature_size**2)."""
        return self.image_size // 2 ** len(self.conv_channels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VLAConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VLAConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
