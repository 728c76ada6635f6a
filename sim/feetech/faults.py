"""Fault injection for the emulated bus: what goes wrong on a real SO-101 bus, on purpose and reproducibly.

``FaultProfile`` is a small frozen value; ``SimBus.faults`` takes one (and can be swapped at run time). Text form, for
the command line and for ``simbus://`` URLs (``FaultProfile.parse`` / ``str``)::

    corrupt=0.02,drop=0.01,late=0.01,late_ms=50,unplugged=3+4,overload=2,low_voltage=5,seed=1

Items are separated by ``,`` or ``;``; a key and its value by ``=`` or ``:`` (so ``corrupt:0.02;drop:0.01`` works
inside a URL query); id lists by ``+`` (a URL query turns ``+`` into a space, which is accepted too) and may hold
ranges (``3-5``). ``none`` or an empty string is the profile without faults.

- ``drop``: probability that a reply is not sent at all (the driver sees a timeout).
- ``corrupt``: probability that one bit of a reply is flipped somewhere after the FF FF header (the driver sees a
  checksum error most of the time, sometimes a malformed or short packet).
- ``late``/``late_ms``: probability that a reply is delayed by ``late_ms`` (default 50 ms); later replies of the same
  transaction wait behind it.
- ``unplugged``: ids that hear nothing and say nothing.
- ``overload``: ids whose joint is jammed: their load reads above Overload_Torque whenever torque is on, so the
  overload protection trips after Protection_Time (status bit 0x20, torque off).
- ``low_voltage``: ids whose supply reads ``LOW_VOLTAGE_V`` = 3.8 V, below the factory Min_Voltage_Limit of 4.0 V, so
  their status byte carries the VOLTAGE bit (0x01) until the profile is lifted.
- ``seed``: seed of the random generator that decides drop/corrupt/late, so a run replays exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

LOW_VOLTAGE_V = 3.8  # V: below the factory Min_Voltage_Limit (4.0 V) -> VOLTAGE status bit
DEFAULT_LATE_S = 0.05

_KEYS = ("drop", "corrupt", "late", "late_ms", "late_s", "unplugged", "overload", "low_voltage", "seed")


def parse_id_list(text: str) -> list[int]:
    """``"1-6"``, ``"3+4"``, ``"1,3,5"``, ``"2 7-9"`` -> sorted, unique ids."""
    out: set[int] = set()
    for part in re.split(r"[+\s|/,]+", text.strip()):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        if m:
            out.update(range(int(m[1]), int(m[2]) + 1))
        elif part.isdigit():
            out.add(int(part))
        else:
            raise ValueError(f"bad servo id {part!r} in {text!r}: write ids like 3+4, 1-6 or 1,3,5")
    return sorted(out)


def _ids(value: Iterable[int] | str) -> frozenset[int]:
    if isinstance(value, str):
        return frozenset(parse_id_list(value))
    return frozenset(int(i) for i in value)


@dataclass(frozen=True)
class FaultProfile:
    drop: float = 0.0
    corrupt: float = 0.0
    late: float = 0.0
    late_s: float = DEFAULT_LATE_S
    unplugged: frozenset[int] = field(default_factory=frozenset)
    overload: frozenset[int] = field(default_factory=frozenset)
    low_voltage: frozenset[int] = field(default_factory=frozenset)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt", "late"):
            p = float(getattr(self, name))
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault probability {name}={p} must be within 0..1 (e.g. {name}=0.02 for 2 %)")
            object.__setattr__(self, name, p)
        if self.late_s < 0:
            raise ValueError(f"late_s must be >= 0 seconds, got {self.late_s}")
        object.__setattr__(self, "late_s", float(self.late_s))
        for name in ("unplugged", "overload", "low_voltage"):
            ids = _ids(getattr(self, name))
            bad = sorted(i for i in ids if not 0 <= i <= 253)
            if bad:
                raise ValueError(f"{name}: servo ids must be within 0..253, got {bad}")
            object.__setattr__(self, name, ids)
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def active(self) -> bool:
        """True when the profile injects anything at all."""
        return bool(self.drop or self.corrupt or self.late or self.unplugged or self.overload or self.low_voltage)

    @classmethod
    def parse(cls, text: str | None) -> FaultProfile:
        """``"corrupt=0.02,drop=0.01,late_ms=50,unplugged=3+4,seed=1"`` -> FaultProfile (see the module docstring)."""
        kwargs: dict[str, object] = {}
        text = (text or "").strip()
        if text.lower() in ("", "none"):
            return cls()
        for item in re.split(r"[,;]", text):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"([A-Za-z_]+)\s*[=:]\s*(.*)", item)
            if not m or m[1] not in _KEYS:
                raise ValueError(
                    f"bad fault item {item!r}: expected key=value with key one of {', '.join(_KEYS)} "
                    "(e.g. corrupt=0.02,drop=0.01,unplugged=3+4)"
                )
            key, value = m[1], m[2].strip()
            try:
                if key in ("drop", "corrupt", "late"):
                    kwargs[key] = float(value)
                elif key == "late_ms":
                    kwargs["late_s"] = float(value) / 1000.0
                elif key == "late_s":
                    kwargs["late_s"] = float(value)
                elif key == "seed":
                    kwargs["seed"] = int(value)
                else:
                    kwargs[key] = _ids(value)
            except ValueError as exc:
                raise ValueError(f"bad value in fault item {item!r}: {exc}") from None
        return cls(**kwargs)  # type: ignore[arg-type]

    def __str__(self) -> str:
        parts = [f"{k}={getattr(self, k)!r}" for k in ("corrupt", "drop", "late") if getattr(self, k)]
        if self.late_s != DEFAULT_LATE_S:
            ms = self.late_s * 1000.0
            if float(repr(ms)) / 1000.0 == self.late_s:
                parts.append(f"late_ms={ms:g}" if float(f"{ms:g}") == ms else f"late_ms={ms!r}")
            else:
                parts.append(f"late_s={self.late_s!r}")
        for k in ("unplugged", "overload", "low_voltage"):
            ids = getattr(self, k)
            if ids:
                parts.append(f"{k}=" + "+".join(str(i) for i in sorted(ids)))
        if self.seed:
            parts.append(f"seed={self.seed}")
        return ",".join(parts) if parts else "none"
