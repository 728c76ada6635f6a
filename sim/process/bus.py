"""An emulated servo bus on a pseudo-terminal, served by a child process, with a handle on its servos.

``PtyBusServer`` serves a ``SimBus`` from a thread of the calling process. That is the simplest setup, but the
"device" then pauses whenever the process that drives it pauses, which a real servo never does: a full garbage
collection with LeRobot imported takes ~140 ms on a 2-core machine, and Feetech's SDK busy-polls while it waits,
holding the GIL against the server thread. LeRobot waits 50 ms for a reply and the bare SDK ~34 ms, so on a loaded
machine a driver running next to an in-process server sees timeouts a real bus would not give it. ``BusProcess``
runs the same ``SimBus`` + ``PtyBusServer`` in a child process, like a real bus on a USB adapter, and keeps a small
control channel to it (JSON lines over the child's stdin/stdout) so that tests can look at the servos' registers::

    with BusProcess([ServoSpec(i) for i in range(1, 7)], wire_time=True) as proc:
        port = serial.Serial(proc.path, 1_000_000)         # or Feetech's SDK, or LeRobot, on proc.path
        ...
        assert proc.servo(3).read_register("P_Coefficient") == 16

The child is ``python -m sim.process.bus`` with this process's ``sys.path``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sim.process.child import ChildServer

# What the control channel may touch: (target kind, attribute) -> call (True) or read (False).
_ALLOWED = {
    ("bus", "unplug"): True,
    ("bus", "plug"): True,
    ("bus", "is_plugged"): True,
    ("bus", "power_cycle"): True,
    ("bus", "ids"): False,
    ("servo", "read_register"): True,
    ("servo", "write_register"): True,
    ("servo", "read_bytes"): True,
    ("servo", "flash"): False,
    ("servo", "baudrate"): False,
    ("servo", "id"): False,
}


@dataclass(frozen=True)
class ServoSpec:
    """One emulated STS3215: its id, where its horn sits (plant frame, steps) and its baud-rate code."""

    id: int
    position: float = 2048.0
    baudrate_code: int = 0


class RemoteServo:
    """A servo of a ``BusProcess``, looked up by its current id at each call."""

    def __init__(self, proc: BusProcess, servo_id: int):
        self._proc = proc
        self._id = servo_id

    def read_register(self, name: str | int) -> int:
        return self._proc._request("servo", self._id, "read_register", [name])

    def write_register(self, name: str | int, value: int, *, persist: bool = False) -> None:
        self._proc._request("servo", self._id, "write_register", [name, value], {"persist": persist})

    def read_bytes(self, address: int, length: int) -> bytes:
        return self._proc._request("servo", self._id, "read_bytes", [address, length])

    @property
    def flash(self) -> bytes:
        return self._proc._request("servo", self._id, "flash")

    @property
    def baudrate(self) -> int | None:
        return self._proc._request("servo", self._id, "baudrate")

    @property
    def id(self) -> int:
        return self._proc._request("servo", self._id, "id")

    def __repr__(self) -> str:
        return f"RemoteServo(id={self._id})"


class BusProcess(ChildServer):
    """``SimBus`` + ``PtyBusServer`` in a child process (see the module docstring). ``path`` is the pty to open.

    ``boost``: run the child ahead of ordinary processes where the OS allows it (real-time round-robin, else nice
    -10), so that the "servos" answer in time on a loaded machine as real ones would; off: normal priority.
    """

    module = "sim.process.bus"
    what = "the emulated bus process"

    def __init__(
        self,
        servos: Iterable[ServoSpec | int] = range(1, 7),
        *,
        wire_time: bool = True,
        boost: bool = True,
        start_timeout_s: float = 30.0,
    ):
        self.servos = [s if isinstance(s, ServoSpec) else ServoSpec(int(s)) for s in servos]
        self.wire_time = bool(wire_time)
        self.boost = bool(boost)
        spec = {"servos": [asdict(s) for s in self.servos], "wire_time": self.wire_time, "boost": self.boost}
        super().__init__(spec, start_timeout_s)

    # --- the servos -------------------------------------------------------------------------------------------------
    def servo(self, servo_id: int) -> RemoteServo:
        return RemoteServo(self, servo_id)

    def unplug(self, servo_id: int) -> None:
        self._request("bus", None, "unplug", [servo_id])

    def plug(self, servo_id: int) -> None:
        self._request("bus", None, "plug", [servo_id])

    def is_plugged(self, servo_id: int) -> bool:
        return self._request("bus", None, "is_plugged", [servo_id])

    def power_cycle(self) -> None:
        self._request("bus", None, "power_cycle", [])

    @property
    def ids(self) -> list[int]:
        return self._request("bus", None, "ids")

    # --- the control channel ----------------------------------------------------------------------------------------
    def _request(self, kind: str, target: int | None, name: str, args: list | None = None, kwargs=None) -> Any:
        msg = {"kind": kind, "target": target, "name": name, "args": args, "kwargs": kwargs or {}}
        reply = self._send(msg, 10.0)
        value = reply.get("value")
        return bytes.fromhex(value) if reply.get("bytes") else value


# --------------------------------------------------------------------------------------------------- the child
def _boost_priority() -> None:
    """A real servo answers whatever the host is doing: on a loaded machine, let the emulator have the CPU first.
    Real-time round-robin at the lowest priority if allowed (root or CAP_SYS_NICE; the server thread blocks in
    ``select`` and uses ~0.1 ms of CPU per transaction, and the kernel's RT throttling caps it anyway), else a
    higher nice priority, else nothing. Threads started afterwards (the server's) inherit it."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
        return
    except (AttributeError, OSError):
        pass
    try:
        os.nice(-10)
    except OSError:
        pass


def _serve(spec: dict) -> int:
    from sim.feetech import EmulatedServo, SimBus, SimpleMotor
    from sim.transport.pty_server import PtyBusServer

    servos = [
        EmulatedServo(s["id"], plant=SimpleMotor(s["position"]), baudrate_code=s["baudrate_code"])
        for s in spec["servos"]
    ]
    bus = SimBus(servos)
    if spec.get("boost"):
        _boost_priority()
    with PtyBusServer(bus, wire_time=spec["wire_time"]) as server:
        out = sys.stdout
        out.write(json.dumps({"path": server.path}) + "\n")
        out.flush()
        for line in sys.stdin:
            try:
                msg = json.loads(line)
                kind, name = msg["kind"], msg["name"]
                call = _ALLOWED.get((kind, name))
                if call is None:
                    raise ValueError(f"{kind}.{name} is not available through the control channel")
                if kind == "bus":
                    obj = bus
                    if name == "ids":
                        obj, name, call = bus.servos, "keys", True
                else:
                    obj = bus.servo(msg["target"])
                attr = getattr(obj, name)
                value = attr(*(msg["args"] or []), **msg["kwargs"]) if call else attr
                if isinstance(value, bytes | bytearray):
                    reply = {"value": bytes(value).hex(), "bytes": True}
                else:
                    reply = {"value": sorted(value) if name == "keys" else value}
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve(json.loads(sys.argv[1])))
