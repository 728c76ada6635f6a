"""A simulated SO-101 in a child process, running in real time on a pseudo-terminal: the arm as a separate device.

``SimulatedSO101.serve_pty()`` with a ``RealTimeRunner`` serves the arm from threads of the calling process. A
third-party driver in that same process (LeRobot, Feetech's SDK) then shares the GIL and the garbage collector with
the "device": the SDK busy-polls while it waits for a reply and holds the GIL against the server thread, and a full
collection with LeRobot imported takes ~140 ms, while LeRobot waits 50 ms for a reply. On a loaded machine that
makes the simulated arm miss replies a real arm would not. ``SO101Process`` runs the world, the servos, the runner
and the pty server in a child process, like a real arm on a USB adapter, and keeps a small control channel to it
(JSON lines over the child's stdin/stdout) for what a test or a demo needs from the simulation side::

    with SO101Process(seed=0) as arm:
        robot = SOFollower(SO101FollowerConfig(port=arm.path, id="sim_arm", ...))   # unmodified LeRobot
        arm.hand_to_middle()
        ...
        arm.joint_angles()           # MuJoCo joint angles (rad), JOINT_NAMES order

The child is ``python -m sim.process.so101`` with this process's ``sys.path``. Everything it answers is a copy: the
world lives only in the child.
"""

from __future__ import annotations

import json
import os
import select
import sys
from typing import Any

import numpy as np

from sim.process.child import ChildServer

# Requests the child accepts (name -> what it does there). Kept small on purpose: this is not an RPC framework.
_REQUESTS = (
    "time",
    "joint_angles",
    "factory_calibration",
    "install_calibration",
    "read_register",
    "hand_hold",
    "hand_release",
    "hand_to_middle",
    "hand_start_sweep",
    "hand_sweep_step",
    "dropped_s",
)


class SO101Process(ChildServer):
    """``SimulatedSO101`` + ``RealTimeRunner`` + ``PtyBusServer`` in a child process (module docstring).

    ``path`` is the pty to open once started. ``seed``/``uncalibrated``/``scene`` build the arm as
    ``SimulatedSO101`` does; ``wire_time`` is the pty server's; ``rate`` the runner's (1.0 = real time).
    """

    module = "sim.process.so101"
    what = "the simulated arm's process"

    def __init__(
        self,
        seed: int = 0,
        *,
        uncalibrated: bool = True,
        scene: str = "scene",
        wire_time: bool = True,
        rate: float = 1.0,
        start_timeout_s: float = 60.0,
    ):
        spec = {"seed": seed, "uncalibrated": uncalibrated, "scene": scene, "wire_time": wire_time, "rate": rate}
        super().__init__(spec, start_timeout_s)

    # --- the simulation side ----------------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """The world's simulated time (s)."""
        return self._request("time")

    def joint_angles(self) -> np.ndarray:
        """The six joint angles (rad, JOINT_NAMES order)."""
        return np.array(self._request("joint_angles"))

    def factory_calibration(self) -> dict[str, dict[str, int]]:
        return self._request("factory_calibration")

    def install_calibration(self, calibration: dict[str, dict[str, int]] | None = None) -> None:
        self._request("install_calibration", calibration)

    def read_register(self, joint: str, register: str) -> int:
        """A register of the servo of ``joint``, read directly (not over the bus)."""
        return self._request("read_register", joint, register)

    def hand_hold(self, joint: str, angle: float) -> None:
        self._request("hand_hold", joint, angle)

    def hand_release(self, *joints: str) -> None:
        self._request("hand_release", *joints)

    def hand_to_middle(self) -> None:
        self._request("hand_to_middle")

    def hand_start_sweep(self, joints: list[str], step_deg: float = 2.0) -> None:
        """Prepare sweeps of ``joints`` one after the other (``Hand.sweep``); ``hand_sweep_step`` moves one step."""
        self._request("hand_start_sweep", list(joints), step_deg)

    def hand_sweep_step(self) -> bool:
        """Move the prepared sweep one step; False once every joint has been swept (nothing moved)."""
        return self._request("hand_sweep_step")

    @property
    def dropped_s(self) -> float:
        """Simulated time the child's runner skipped because it could not keep up with the wall clock."""
        return self._request("dropped_s")

    # --- the control channel ----------------------------------------------------------------------------------------
    def _request(self, name: str, *args: Any) -> Any:
        return self._send({"name": name, "args": args}, 30.0).get("value")


# --------------------------------------------------------------------------------------------------- the child
def _serve(spec: dict) -> int:
    """The child: one thread, one ``select`` loop over the pty, the control channel and the physics clock.

    A ``RealTimeRunner`` thread next to a ``PtyBusServer`` thread was measured to miss LeRobot's 50 ms reply
    deadline now and then on a loaded 2-core machine (the server thread woke late while the runner kept its pace);
    a single thread that steps the physics when a step is due and answers the bus when bytes arrive has nobody to
    wait for.
    """
    import gc
    import heapq
    import time
    import tty

    from sim.transport.pty_server import line_baud, read_master
    from sim.twin.physics import RealTimeRunner, World
    from sim.twin.so101 import SimulatedSO101
    from sim.twin.world import JOINT_NAMES

    arm = SimulatedSO101(World(spec["scene"], seed=spec["seed"]), seed=spec["seed"], uncalibrated=spec["uncalibrated"])
    runner = RealTimeRunner(arm.world, rate=spec["rate"])
    sweep = iter(())

    def start_sweep(joints: list[str], step_deg: float) -> None:
        nonlocal sweep
        unknown = [j for j in joints if j not in JOINT_NAMES]
        if unknown:
            raise ValueError(f"unknown joints {unknown}; joints: {list(JOINT_NAMES)}")
        sweep = (angle for joint in joints for angle in arm.hand.sweep(joint, step_deg=step_deg))

    handlers = {
        "time": lambda: arm.world.time,
        "joint_angles": lambda: arm.joint_angles().tolist(),
        "factory_calibration": arm.factory_calibration,
        "install_calibration": arm.install_calibration,
        "read_register": lambda joint, register: arm.servos[joint].read_register(register),
        "hand_hold": arm.hand.hold,
        "hand_release": arm.hand.release,
        "hand_to_middle": arm.hand.to_middle,
        "hand_start_sweep": start_sweep,
        "hand_sweep_step": lambda: next(sweep, None) is not None,
        "dropped_s": lambda: runner.dropped_s,
    }
    if set(handlers) != set(_REQUESTS):
        raise RuntimeError("the child's handlers and _REQUESTS disagree")

    def answer(line: bytes) -> bytes:
        try:
            msg = json.loads(line)
            handler = handlers.get(msg.get("name"))
            if handler is None:
                raise ValueError(f"unknown request {msg.get('name')!r}; requests: {list(_REQUESTS)}")
            reply = {"value": handler(*msg.get("args", ()))}
        except Exception as exc:  # reported to the parent, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        return (json.dumps(reply) + "\n").encode()

    master, slave = os.openpty()  # the slave stays open here: the master never reads EIO without a client
    tty.setraw(master)  # a new pty is in cooked mode and mangles binary traffic (measured-here.md)
    os.set_blocking(master, False)
    control_in, control_out = sys.stdin.fileno(), sys.stdout.fileno()
    os.write(control_out, (json.dumps({"path": os.ttyname(slave)}) + "\n").encode())
    gc.collect()
    gc.freeze()  # what exists now (the model, the servos) is never collected: short collections from here on
    outbox: list[tuple[float, int, bytes]] = []  # (monotonic due time, sequence, reply bytes)
    seq = 0
    pending = b""
    wire_time = spec["wire_time"]
    try:
        while True:
            wait = runner.poll()
            if outbox:
                wait = min(wait, max(0.0, outbox[0][0] - time.monotonic()))
            try:
                ready, _, _ = select.select([master, control_in], [], [], wait)
            except InterruptedError:
                continue
            if master in ready:
                data = read_master(master)
                if data:
                    runner.poll()  # the servos answer with the state of now
                    t, now = arm.bus.clock(), time.monotonic()
                    late = 0.0
                    for r in arm.bus.transact(data, t, line_baud(slave)):
                        late += r.late_s
                        heapq.heappush(outbox, (now + (r.ready_at - t if wire_time else late), seq, r.data))
                        seq += 1
            if control_in in ready:
                chunk = os.read(control_in, 65536)
                if not chunk:
                    return 0  # the parent closed the channel: stop
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    os.write(control_out, answer(line))
            now = time.monotonic()
            while outbox and outbox[0][0] <= now:
                reply = heapq.heappop(outbox)[2]
                try:
                    os.write(master, reply)
                except (BlockingIOError, OSError):
                    pass  # the client's input buffer is full, or it is gone: the bytes are lost, as on a wire
    finally:
        arm.close()
        os.close(master)
        os.close(slave)


if __name__ == "__main__":
    raise SystemExit(_serve(json.loads(sys.argv[1])))
