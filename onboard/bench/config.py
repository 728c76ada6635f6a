"""The options of each `onboard bench ...` benchmark: defaults and help in one place, the command line derived from
them (onboard/cli/options.py). Standard library only, so that building the parser loads no benchmark."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from typing import Any, Literal


def _opt(default: Any = MISSING, help: str = "", **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, **meta})


def _at_least(config: Any, minimum: float, *names: str) -> None:
    for name in names:
        if not getattr(config, name) >= minimum:
            raise ValueError(f"--{name} must be at least {minimum:g}, got {getattr(config, name)}")


@dataclass(frozen=True)
class BusBenchConfig:
    """`onboard bench bus`."""

    n: int = _opt(2000, "round trips per measurement")
    pin: bool = _opt(
        True,
        "run the pty emulator and the drivers wherever the scheduler puts them (default: the emulator on the last "
        "core, the drivers on the others, as a bus is a device of its own)",
        flag="--no-pin",
    )
    cpu_qos: bool = _opt(
        True,
        "let the CPUs idle as they like (default: hold Linux's PM QoS CPU latency request at 0 us for the run, as "
        "cyclictest and `onboard sim serve` do, so that a sleeping driver or emulator wakes in microseconds)",
        flag="--no-cpu-qos",
    )
    json: str | None = _opt(None, "also write the results to this JSON file")

    def __post_init__(self) -> None:
        _at_least(self, 1, "n")


@dataclass(frozen=True)
class SimBenchConfig:
    """`onboard bench sim`."""

    seconds: float = _opt(5.0, "simulated seconds per closed-loop run")
    size: int = _opt(96, "camera image height and width in the loop (px)")
    rate: float = _opt(30.0, "control rate (Hz)")
    repeat: int = _opt(3, "runs per measurement (the median is reported)")

    def __post_init__(self) -> None:
        _at_least(self, 1, "size", "repeat")
        if not (self.seconds > 0 and self.rate > 0):
            raise ValueError(f"--seconds and --rate must be > 0, got {self.seconds:g} and {self.rate:g}")


@dataclass(frozen=True)
class PolicyBenchConfig:
    """`onboard bench policy`."""

    n: int = _opt(200, "timed calls per backend")
    warmup: int = _opt(20, "untimed calls first")
    threads: int = _opt(2, "intra-op threads for torch and onnxruntime")
    checkpoint: str | None = _opt(None, "a VLA checkpoint (default: a random default-config model)")
    lerobot: bool = _opt(True, "skip LeRobot's ACT even when it is installed", flag="--no-lerobot")
    policy_url: str | None = _opt(
        None,
        "also time a policy served by `onboard serve-policy` (ws://host:port): the round trip per chunk and the "
        "server's own time",
        flag="--policy.url",
    )
    json: str | None = _opt(None, "also write the results to this JSON file")

    def __post_init__(self) -> None:
        _at_least(self, 1, "n", "threads")
        _at_least(self, 0, "warmup")


@dataclass(frozen=True)
class LoopBenchConfig:
    """`onboard bench loop`."""

    seconds: float = _opt(10.0, "duration of each run")
    rates: tuple[float, ...] = _opt((30.0, 100.0), "loop rates in Hz")
    arm: Literal["process", "thread", "both"] = _opt(
        "both",
        "where the simulated arm runs: a child process (stand-in cameras), threads of this process (rendered "
        "cameras), or both",
    )
    json: str | None = _opt(None, "also write the numbers to this JSON file")

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        if not (self.seconds > 0 and self.rates and min(self.rates) > 0):
            raise ValueError(f"--seconds and --rates must be > 0, got {self.seconds:g} and {self.rates}")


@dataclass(frozen=True)
class ServeBenchConfig:
    """`onboard bench serve`."""

    seconds: float = _opt(10.0, "seconds of round trips per served device and priority")
    load: int = _opt(6, "CPU-saturating processes started beside the served device (0: an idle machine)")
    targets: tuple[Literal["serve-bus", "serve"], ...] = _opt(
        ("serve-bus", "serve"), "what is served: the servos alone (sim serve-bus), the whole twin (sim serve)"
    )
    priorities: tuple[Literal["normal", "realtime"], ...] = _opt(
        ("normal", "realtime"), "the server thread's priority: normal (--no-realtime) or realtime (the default)"
    )
    json: str | None = _opt(None, "also write the results to this JSON file")

    def __post_init__(self) -> None:
        _at_least(self, 0.5, "seconds")
        _at_least(self, 0, "load")


@dataclass(frozen=True)
class SoakBenchConfig:
    """`onboard bench soak`."""

    seconds: float = _opt(600.0, "how long LeRobot's lerobot-teleoperate runs against the served twin")
    load: int = _opt(6, "CPU-saturating processes started beside it (0: an idle machine)")
    fps: int = _opt(30, "lerobot-teleoperate's --fps")
    realtime: bool = _opt(True, "serve at raised priority (--no-realtime: at normal priority)", flag="--no-realtime")
    json: str | None = _opt(None, "also write the results to this JSON file")

    def __post_init__(self) -> None:
        _at_least(self, 1, "seconds", "fps")
        _at_least(self, 0, "load")


@dataclass(frozen=True)
class RunBenchConfig:
    """`onboard bench run`."""

    duration: float = _opt(60.0, "seconds of the policy loop")
    cpus: int = _opt(
        1,
        "cores this process (control loop, camera decoding, inference) is pinned to, 1 = a Pi-class budget; the "
        "served twin runs on the others",
    )
    fps: float = _opt(30.0, "control rate (Hz)")
    camera: Literal["mjpeg", "raw"] = _opt(
        "mjpeg",
        "how the two camera streams arrive: JPEG-encoded on the twin's cores and decoded here (a USB camera's "
        "MJPEG), or raw RGB from the served twin's shared memory",
    )
    width: int = _opt(640, "camera width (px), resized to the policy's input on the loop side")
    height: int = _opt(480, "camera height (px)")
    jpeg_quality: int = _opt(80, "JPEG quality of --camera mjpeg (1-100)")
    policy_path: str | None = _opt(None, "policy folder (default: the bundled ONNX model)", flag="--policy.path")
    threads: int | None = _opt(None, "intra-op threads of the policy (default: --cpus)")
    seed: int = _opt(0, "the served scene's layout seed", flag="--sim.seed")
    task: Literal["touch", "pick", "place"] = _opt("pick", "the served scene's task", flag="--sim.task")
    color: Literal["red", "green", "blue"] = _opt("red", "its cube", flag="--sim.color")
    json: str | None = _opt(None, "also write the report to this JSON file")

    def __post_init__(self) -> None:
        _at_least(self, 1, "cpus", "width", "height", "jpeg_quality")
        if self.threads is not None:
            _at_least(self, 1, "threads")
        if not (self.duration > 0 and self.fps > 0) or self.jpeg_quality > 100:
            raise ValueError(
                f"--duration and --fps must be > 0 and --jpeg_quality at most 100, got {self.duration:g}, "
                f"{self.fps:g} and {self.jpeg_quality}"
            )
