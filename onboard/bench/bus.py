"""`onboard bench bus`: how long a 6-servo SYNC_READ / SYNC_WRITE takes through each driver stack and transport.

What one control-loop tick costs on the servo bus: SYNC_READ of Present_Position (2 bytes) from servos 1-6 and
SYNC_WRITE of Goal_Position (2 bytes) to them, against the emulated STS3215 bus.

Rows (same run, same emulator):

- onboard's ``FeetechBus`` (a) in-process ``simbus://`` with instant replies, (b) in-process with the wire-time model,
  (c) over a pseudo-terminal with the wire-time model, (d) over the pty without it;
- (e) LeRobot 0.4.4's ``FeetechMotorsBus.sync_read/sync_write(..., normalize=False)`` and (f) Feetech's SDK
  ``GroupSyncRead``/``GroupSyncWrite``, unmodified, on the same ptys (with and without wire time), when installed;
- (g) a bare client on the same ptys: the request's bytes out, a spin until the replies' bytes are in, no driver
  code: the floor of the transport (kernel delivery and the emulator's timing) that every driver's round trip sits on.

The drivers on a pty are connected to it at once (each with its own descriptor: only the one being measured reads)
and measured in ten interleaved turns, the order rotating, so that the machine's drift over the run (other jobs, the
hypervisor) falls on all of them alike: measured one after the other, the same driver's median moved by up to 40 us
from run to run, more than the differences between drivers. The stacks are in ``onboard.bench.bus_drivers``.

For the whole run the bench holds Linux's PM QoS CPU latency request at 0 us (``sim.realtime.CpuWakeLatency``, as
``cyclictest`` does and `onboard sim serve` does while serving; ``--no-cpu-qos`` to leave it): on a virtual machine
a thread sleeping on an idle CPU is otherwise woken ~90 us late, for the emulator and for a sleeping driver alike.

The pty server runs in a separate process (``sim.process.bus``), as a real bus is a separate device: a pause of the
measuring process does not pause the "servos", and the CPU time per op is the driver stack's alone; with two or more
cores it runs on the last one and the drivers on the others (``--no-pin``: wherever the scheduler puts them; on a
loaded machine it then tends to land on a sleeping driver's core and preempt it at each request). In the in-process
rows the emulator runs inside ``write()``, so their CPU time includes it.

The wire-time limit is what the bytes alone take at 1 Mbaud, 10 bits per byte: SYNC_READ = request (14 bytes) +
6 replies (8 bytes each) = 620 us; SYNC_WRITE = its request (26 bytes) = 260 us. SYNC_WRITE has no reply: its time
is how long the caller is held, and a ratio below 1 means the call returns before a real adapter would have sent the
bytes. Feetech's SDK busy-polls while it waits, so its CPU time per op is close to its round trip.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import serial

from hardware.feetech import protocol as proto
from onboard.bench.bus_drivers import (
    BAUD,
    GOAL,
    GOAL_POSITION,
    IDS,
    PRESENT_POSITION,
    READ_REPLIES,
    SIZE,
    Ops,
    lerobot_ops,
    onboard_ops,
    raw_ops,
    sdk_ops,
)
from onboard.bench.config import BusBenchConfig
from onboard.bench.cores import pin_this_process, usable_cores
from onboard.bench.measure import measure, percentile
from onboard.bench.sysinfo import machine_info, machine_lines
from onboard.cli.options import command_line
from sim.process.bus import BusProcess

READ_REQUEST = len(proto.sync_read(IDS, PRESENT_POSITION, SIZE))  # 14 bytes
WRITE_REQUEST = len(proto.sync_write(GOAL_POSITION, SIZE, {i: GOAL.to_bytes(2, "little") for i in IDS}))  # 26
WIRE_LIMIT_US = {
    "sync_read": proto.wire_time(READ_REQUEST + READ_REPLIES, BAUD) * 1e6,
    "sync_write": proto.wire_time(WRITE_REQUEST, BAUD) * 1e6,
}

# The emulator at normal priority: boosted (real-time), it preempts the measuring process on a 2-core machine the
# moment a packet arrives, and a SYNC_WRITE then looks ~5x slower than it is (~100 us instead of ~20 us) because
# the caller is held while the "servos" compute, which a real bus never costs the host. Its test runs it so too
# (default scheduling) and asserts no timing.
EMULATOR_BOOST = False

PTY = "pty (separate process)"
ONBOARD = "onboard FeetechBus"
LEROBOT = "LeRobot FeetechMotorsBus"
SDK = "Feetech SDK GroupSync*"
RAW = "bare client (no driver)"  # the transport's floor: request bytes out, spin until the reply bytes are in


@dataclass
class Row:
    driver: str
    transport: str
    timing: str  # "instant" | "wire"
    op: str  # "sync_read" | "sync_write"
    n: int
    median_us: float
    p99_us: float
    cpu_us_per_op: float
    errors: int
    wire_limit_us: float | None = None
    ratio_to_wire: float | None = None
    vs_onboard: float | None = None  # median / onboard's median on the same transport, timing and op

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.transport, self.timing, self.op)


@dataclass
class Results:
    n: int
    warmup: int
    command: str
    argv: list[str]
    machine: dict[str, object]
    wire_limit_us: dict[str, float]
    rows: list[Row] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    verdict: dict[str, object] = field(default_factory=dict)
    cores: dict[str, list[int]] = field(default_factory=dict)  # pty rows: the drivers' and the emulator's cores
    cpu_qos: str = "off"  # Linux's PM QoS CPU latency request during the run (sim.realtime.CpuWakeLatency)


def _cores(pin: bool) -> dict[str, list[int]]:
    usable = usable_cores()
    if pin and len(usable) >= 2:
        return {"drivers": usable[:-1], "emulator": usable[-1:]}
    return {"drivers": usable, "emulator": usable}


# ------------------------------------------------------------------------------------------------- measuring
def make_row(driver: str, transport: str, timing: str, op: str, lat: list[int], cpu_ns: float, errors: int) -> Row:
    lat = sorted(lat)
    median = percentile(lat, 0.5) / 1e3
    row = Row(driver, transport, timing, op, len(lat), median, percentile(lat, 0.99) / 1e3, cpu_ns / 1e3, errors)
    if timing == "wire":
        row.wire_limit_us = WIRE_LIMIT_US[op]
        row.ratio_to_wire = median / row.wire_limit_us
    return row


ROUNDS = 10  # pty rows: each driver measured in this many turns, interleaved, so that drift hits them alike


Stack = tuple[str, Callable[[], contextlib.AbstractContextManager[Ops]]]  # (driver, connects it, yields its ops)


def measure_interleaved(results: Results, stacks: list[Stack], transport: str, timing: str) -> None:
    """Both ops of every driver stack in ``stacks`` ((driver, context manager factory yielding ``Ops``)) on one
    transport, connected at once and measured in ``ROUNDS`` interleaved turns (the order rotating from turn to turn),
    so that the machine's drift over the run (other jobs, the hypervisor) falls on every driver alike. Reads wait
    for their replies, so they pace themselves; writes get no reply, so they are sent at most one per wire time of
    their bytes, as a real bus would drain them. A stack that fails to connect is skipped with its reason."""
    with contextlib.ExitStack() as stack:
        ops: dict[str, Ops] = {}
        for driver, connect in stacks:
            try:
                ops[driver] = stack.enter_context(connect())
            except Exception as exc:  # a third-party stack failing is a finding, not a crash
                results.skipped.append({"driver": driver, "reason": f"{timing}: {type(exc).__name__}: {exc}"})
        rounds = max(1, min(ROUNDS, results.n)) if len(ops) > 1 else 1
        for op, pace in (("sync_read", 0.0), ("sync_write", WIRE_LIMIT_US["sync_write"] / 1e6)):
            got: dict[str, tuple[list[int], float, int]] = {d: ([], 0.0, 0) for d in ops}
            for k in range(rounds):
                order = list(ops)[k % len(ops) :] + list(ops)[: k % len(ops)]
                for driver in order:
                    fn = getattr(ops[driver], op.removeprefix("sync_"))
                    n = results.n // rounds + (1 if k < results.n % rounds else 0)
                    warmup = results.warmup if k == 0 else min(10, results.warmup)
                    lat, cpu, errors = measure(fn, n, warmup, pace)
                    all_lat, all_cpu, all_err = got[driver]
                    got[driver] = (all_lat + lat, all_cpu + cpu * n, all_err + errors)
                    time.sleep(0.002)  # let the emulator finish with the last packets before the next driver
            for driver, (lat, cpu_total, errors) in got.items():
                results.rows.append(make_row(driver, transport, timing, op, lat, cpu_total / len(lat), errors))


# ---------------------------------------------------------------------------------------------------- report
def verdict(results: Results) -> tuple[dict[str, object], list[str]]:
    """SYNC_READ over the pty at wire time, onboard against each other driver (median, CPU per read, below the wire
    time), as JSON and as lines. Empty without onboard's row."""
    rows = {r.driver: r for r in results.rows if r.key == (PTY, "wire", "sync_read")}
    if (ours := rows.pop(ONBOARD, None)) is None:
        return {}, []
    out: dict[str, object] = {"onboard_median_us": ours.median_us, "onboard_x_wire": ours.ratio_to_wire}
    lines = [f"pty wire-time SYNC_READ: onboard {ours.median_us:.0f} us = {ours.ratio_to_wire:.2f}x wire"]
    if (floor := rows.pop(RAW, None)) is not None:
        out["floor_median_us"], out["floor_x_wire"] = floor.median_us, floor.ratio_to_wire
        lines.append(
            f"  the transport's floor (a bare client, no driver): {floor.median_us:.0f} us = "
            f"{floor.ratio_to_wire:.2f}x wire"
        )
    for driver, r in rows.items():
        cpu_ratio, faster = ours.cpu_us_per_op / r.cpu_us_per_op, ours.median_us < r.median_us
        below = r.ratio_to_wire < 1
        out[driver] = {"median_us": r.median_us, "onboard_faster": faster, "cpu_ratio": cpu_ratio, "below_wire": below}
        lines.append(
            f"  vs {driver}: {r.median_us:.0f} us{' (below the wire time!)' if below else ''}; onboard "
            f"{'faster' if faster else 'NOT faster'}, at {cpu_ratio:.2f}x its CPU per read"
        )
    return out, lines


def _fmt(x: float | None, spec: str = ".0f", suffix: str = "") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def format_table(results: Results) -> str:
    header = ("driver", "transport", "timing", "op", "median us", "p99 us", "x wire", "x onboard", "CPU us/op", "err")
    lines = [
        (
            r.driver,
            r.transport,
            r.timing,
            r.op,
            _fmt(r.median_us, ".1f"),
            _fmt(r.p99_us, ".1f"),
            _fmt(r.ratio_to_wire, ".2f"),
            _fmt(r.vs_onboard, ".2f"),
            _fmt(r.cpu_us_per_op, ".1f"),
            str(r.errors),
        )
        for r in results.rows
    ]
    widths = [max(len(h), *(len(line[k]) for line in lines)) if lines else len(h) for k, h in enumerate(header)]
    left = 4  # text columns are left-aligned, numbers right-aligned

    def fmt_line(cells) -> str:
        return "  ".join(c.ljust(w) if k < left else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))

    out = [fmt_line(header), fmt_line(["-" * w for w in widths])]
    out += [fmt_line(line) for line in lines]
    return "\n".join(out)


def _header(results: Results) -> str:
    return "\n".join(
        [
            f"command: {results.command}",
            f"argv:    {' '.join(results.argv)}",
            *machine_lines(results.machine),
            f"bus:     6 emulated STS3215 (ids 1-6) at {BAUD} baud; n = {results.n} round trips per row after "
            f"{results.warmup} warm-up",
            f"wire-time limit at 1 Mbaud (10 bits/byte): SYNC_READ {READ_REQUEST} + {len(IDS)}x{6 + SIZE} bytes = "
            f"{WIRE_LIMIT_US['sync_read']:.0f} us; SYNC_WRITE {WRITE_REQUEST} bytes = "
            f"{WIRE_LIMIT_US['sync_write']:.0f} us",
            f"cores:   pty rows: drivers on {results.cores['drivers']}, the emulator on {results.cores['emulator']}",
            f"idle:    PM QoS CPU wake latency {results.cpu_qos} (--no-cpu-qos: the CPUs idle as they like)",
        ]
    )


NOTES = """\
notes: x wire = median / wire-time limit of the bytes (wire-time rows only). x onboard = median / onboard's median
on the same transport, timing and op. SYNC_WRITE has no reply: its time is how long the caller is held (below the
wire limit = it returns before a real adapter would have sent the bytes); writes go out at most one per 260 us.
pty rows: the emulator runs in a separate process (like a real bus), so CPU us/op is the driver stack's alone;
in-process rows include the emulator's CPU. Feetech's SDK and LeRobot's bus busy-poll while waiting for a reply;
onboard's driver sleeps until the replies are due on the wire, then polls briefly (hardware/feetech/replies.py).
A read row below the wire limit cannot be a full round trip: after a timeout, a driver that flushed its input before
the late replies arrived takes them for the next request's (one request behind from then on).
err = failed transactions (timeouts, bad replies)."""


# ------------------------------------------------------------------------------------------------------ main
def main(cfg: BusBenchConfig) -> int:
    """Run every row, print the table to stdout, and write the numbers as JSON to ``cfg.json`` if given."""
    from sim.realtime import CpuWakeLatency

    with CpuWakeLatency() if cfg.cpu_qos else contextlib.nullcontext() as qos:
        return _main(cfg, qos.state if qos is not None else "not requested")


def _main(cfg: BusBenchConfig, cpu_qos: str) -> int:
    import sim  # noqa: F401  (registers simbus://)

    n, json_path = cfg.n, cfg.json
    command = command_line("onboard bench bus", cfg)
    results = Results(
        n=n,
        warmup=max(5, min(200, n // 10)),
        command=command,
        argv=list(sys.argv),
        machine=machine_info(),
        wire_limit_us=dict(WIRE_LIMIT_US),
        cores=_cores(cfg.pin),
        cpu_qos=cpu_qos,
    )
    print(_header(results), flush=True)
    print("measuring ...", flush=True)

    for timing in ("instant", "wire"):
        port = serial.serial_for_url(f"simbus://?ids=1-6&timing={timing}", baudrate=BAUD)
        try:
            in_process = [(ONBOARD, functools.partial(onboard_ops, port))]
            measure_interleaved(results, in_process, "simbus:// in-process", timing)
        finally:
            port.close()

    third_party = []
    for driver, module, fn in ((LEROBOT, "lerobot.motors.feetech", lerobot_ops), (SDK, "scservo_sdk", sdk_ops)):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            extra = "pip install 'onboard[interop]'"
            results.skipped.append({"driver": driver, "reason": f"{module} not installed ({exc}); {extra}"})
            continue
        third_party.append((driver, fn))

    # The pty servers run in child processes, as a real bus is a separate device (sim/process/bus.py), on a core of
    # their own where there are two (they inherit the mask they start with; the drivers then get the other cores).
    servers = {
        "wire": BusProcess(IDS, wire_time=True, boost=EMULATOR_BOOST),
        "instant": BusProcess(IDS, wire_time=False, boost=EMULATOR_BOOST),
    }
    usable = usable_cores()
    try:
        if results.cores["emulator"] != usable:
            pin_this_process(results.cores["emulator"])
        for server in servers.values():
            server.start()
    except (OSError, RuntimeError) as exc:
        pin_this_process(usable)
        for server in servers.values():
            server.stop()
        for driver in (ONBOARD, *(d for d, _ in third_party)):
            results.skipped.append({"driver": driver, "reason": f"pty rows skipped: {exc}"})
    else:
        try:
            pin_this_process(results.cores["drivers"])
            for timing in ("wire", "instant"):
                path = servers[timing].path
                stacks = [(RAW, raw_ops), (ONBOARD, onboard_ops), *third_party]
                measure_interleaved(results, [(d, functools.partial(fn, path)) for d, fn in stacks], PTY, timing)
        finally:
            pin_this_process(usable)
            for server in servers.values():
                server.stop()

    ours = {r.key: r.median_us for r in results.rows if r.driver == ONBOARD}
    order = {RAW: -1, ONBOARD: 0, LEROBOT: 1, SDK: 2}
    for r in results.rows:
        if r.driver != ONBOARD and r.key in ours and ours[r.key] > 0:
            r.vs_onboard = r.median_us / ours[r.key]
    results.rows.sort(key=lambda r: (r.op, r.transport != "simbus:// in-process", r.timing, order[r.driver]))

    print()
    print(format_table(results))
    for s in results.skipped:
        print(f"skipped: {s['driver']}: {s['reason']}")
    results.verdict, lines = verdict(results)
    print("\n".join(lines))
    print(NOTES)
    if json_path:
        payload = asdict(results)
        Path(json_path).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {json_path}")
    return 0
