"""The project's own small VLA policy. `config` imports no torch; `model`, `checkpoint` and `export` need it."""

from policies.vla.config import VLAConfig

__all__ = ["VLAConfig"]
