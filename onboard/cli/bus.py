"""`onboard bus ...`: what a person assembling an arm needs: find servos, read and write registers by name, give
each servo its id and baud rate (what LeRobot's setup-motors does), on a real port or a simulated one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field

from hardware.feetech import BAUD_RATES, BROADCAST_ID, REGISTERS, STS3215_REGISTERS, FeetechError, register
from hardware.feetech.bus import DEFAULT_BAUDRATE, FeetechBus
from hardware.feetech.protocol import MAX_ID
from hardware.feetech.tables import Area
from onboard.cli.options import add_options, config_from
from robot.arm_config import PORT_HELP

SO101_MOTORS = {  # LeRobot's SO-100/SO-101 motor ids (hardware.md §3)
    "shoulder_pan": 1,
    "shoulder_lift": 2,
    "elbow_flex": 3,
    "wrist_flex": 4,
    "wrist_roll": 5,
    "gripper": 6,
}


def parse_ids(text: str) -> list[int]:
    """'1-6', '1,3,5', '0-252' -> ids (each 0-253; a ``ValueError`` saying how to write them otherwise)."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                ids.extend(range(int(lo), int(hi) + 1))
            elif part:
                ids.append(int(part))
        except ValueError:
            raise ValueError(f"--ids {text!r}: write servo ids like 1-6, 1,3,5 or 0-252") from None
    bad = [i for i in ids if not 0 <= i <= MAX_ID]
    if bad or not ids:
        raise ValueError(f"--ids {text!r}: servo ids are 0-{MAX_ID} ({BROADCAST_ID} is the broadcast id)")
    return ids


BAUDS = sorted(BAUD_RATES.values())


def check_id(value: int, flag: str = "--id") -> None:
    """A servo id the bus can address one servo at: 0-253 (254 is the broadcast id)."""
    if value == BROADCAST_ID:
        raise ValueError(
            f"{flag} {BROADCAST_ID} is the broadcast id: every servo hears it and none answers; give one servo's "
            f"id (0-{MAX_ID}; `onboard bus scan` lists them)"
        )
    if not 0 <= value <= MAX_ID:
        raise ValueError(f"{flag} {value} is out of range: servo ids are 0-{MAX_ID}")


def resolve_port(port: str) -> str:
    """'sim' -> the in-process emulator's URL; any other port as it is."""
    if port == "sim":
        return "simbus://?ids=1-6"
    return port


def _opt(default=MISSING, help: str = "", **meta):
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True, kw_only=True)
class BusOptions:
    port: str = _opt(help=PORT_HELP)
    baud: int = _opt(DEFAULT_BAUDRATE, f"bus baud rate (the STS3215's: {', '.join(map(str, BAUDS))})")
    latency_ms: float = _opt(20.0, "reply margin over the wire time, ms", flag="--latency-ms")

    def __post_init__(self) -> None:
        if self.baud not in BAUDS:
            raise ValueError(
                f"--baud {self.baud} is not a baud rate the STS3215 supports; it supports "
                f"{', '.join(map(str, sorted(BAUDS, reverse=True)))} (factory setting {DEFAULT_BAUDRATE})"
            )
        if not 0 <= self.latency_ms <= 1000:
            raise ValueError(f"--latency-ms must be within 0-1000 ms, got {self.latency_ms}")


@dataclass(frozen=True, kw_only=True)
class ScanConfig(BusOptions):
    all_bauds: bool = _opt(False, "scan every STS baud rate, not just --baud", flag="--all-bauds")
    ids: str = _opt("0-252", "ids to try")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_ids(self.ids)


@dataclass(frozen=True, kw_only=True)
class ReadConfig(BusOptions):
    id: int = _opt(help=f"servo id (0-{MAX_ID})")
    names: tuple[str, ...] = _opt((), "register names, e.g. Present_Position Homing_Offset", positional=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_id(self.id)


@dataclass(frozen=True, kw_only=True)
class WriteConfig(BusOptions):
    id: int = _opt(help=f"servo id (0-{MAX_ID}; {BROADCAST_ID}, every servo, only with --broadcast)")
    name: str = _opt(help="register name", positional=True)
    value: int = _opt(help="the value to write", positional=True)
    persist: bool = _opt(False, "EEPROM: torque off, unlock, write, lock (survives power-off)")
    broadcast: bool = _opt(
        False, f"with --id {BROADCAST_ID}: write to every servo on the bus at once (no servo answers a broadcast)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.broadcast and self.id != BROADCAST_ID:
            raise ValueError(f"--broadcast writes to every servo: give --id {BROADCAST_ID} with it, or drop it")
        if self.id == BROADCAST_ID and not self.broadcast:
            raise ValueError(
                f"--id {BROADCAST_ID} is the broadcast id: the write would reach every servo on the bus (on an arm, "
                f"every joint moves); add --broadcast if that is what you want, or give one servo's id (0-{MAX_ID})"
            )
        if self.id != BROADCAST_ID:
            check_id(self.id)
        if self.broadcast and self.name == "ID":
            raise ValueError("a broadcast ID write would give every servo the same id: use `onboard bus set-id`")


@dataclass(frozen=True, kw_only=True)
class SetIdConfig(BusOptions):
    id: int = _opt(help="current id")
    new_id: int = _opt(help=f"the servo's new id (0-{MAX_ID})", flag="--new-id")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_id(self.id)
        check_id(self.new_id, "--new-id")


@dataclass(frozen=True, kw_only=True)
class SetBaudConfig(BusOptions):
    id: int = _opt(help="servo id")
    new_baud: int = _opt(help="the servo's new baud rate", flag="--new-baud", choices=BAUDS)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_id(self.id)


@dataclass(frozen=True, kw_only=True)
class SetupMotorConfig(BusOptions):
    new_id: int = _opt(help=f"the servo's new id (0-{MAX_ID})", flag="--new-id")
    new_baud: int = _opt(DEFAULT_BAUDRATE, "the servo's new baud rate", flag="--new-baud", choices=BAUDS)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_id(self.new_id, "--new-id")


def add_parser(sub: argparse._SubParsersAction) -> None:
    bus = sub.add_parser("bus", help="talk to Feetech servos: scan, read/write registers, set ids and baud rates")
    bsub = bus.add_subparsers(dest="bus_cmd", required=True)
    for name, config, handler, text in (
        ("scan", ScanConfig, cmd_scan, "find servos at every baud rate (or --baud) and id"),
        ("registers", None, cmd_registers, "list the STS3215 register map"),
        ("read", ReadConfig, cmd_read, "read registers by name (all of them if none is named)"),
        ("write", WriteConfig, cmd_write, "write a register by name"),
        ("set-id", SetIdConfig, cmd_set_id, "give one servo a new id (persistent)"),
        ("set-baud", SetBaudConfig, cmd_set_baud, "set one servo's baud rate (persistent)"),
        (
            "setup-motor",
            SetupMotorConfig,
            cmd_setup_motor,
            "with exactly one servo connected: find it at any baud rate and id, give it --new-id and --new-baud",
        ),
        (
            "setup-motors",
            BusOptions,
            cmd_setup_motors,
            "SO-101 wizard: connect one motor at a time (gripper first) and press Enter for each",
        ),
    ):
        p = bsub.add_parser(name, help=text)
        if config is not None:
            add_options(p, config)
        p.set_defaults(func=handler)


def _bus(cfg: BusOptions) -> FeetechBus:
    return FeetechBus(cfg.port, cfg.baud, latency_s=cfg.latency_ms / 1000.0)


def cmd_scan(args: argparse.Namespace, out=print) -> int:
    cfg = config_from(args, ScanConfig)
    bauds = list(BAUD_RATES.values()) if cfg.all_bauds else [cfg.baud]
    ids = parse_ids(cfg.ids)
    with _bus(cfg) as bus:

        def progress(baud: int, servo_id: int) -> None:
            if servo_id < 0:
                print(f"  scanning {baud} baud ...", file=sys.stderr, flush=True)

        found = bus.scan(ids, bauds, progress=progress)
    problems = getattr(found, "problems", [])
    if not found and not problems:
        out(f"no servos found on {cfg.port} at {', '.join(map(str, bauds))} baud. Check power and cabling.")
        return 1
    if found:
        out(f"{'baud':>8}  {'id':>3}  model     firmware")
    for f in found:
        out(f"{f.baudrate:>8}  {f.id:>3}  {f.model:<8}  {f.firmware}")
    if problems:
        where = ", ".join(f"id {p.id} at {p.baudrate} baud" for p in problems)
        print(
            f"error: {where} answered only with damaged replies: a servo is probably there. Check the cable, the "
            "connectors and the power supply, that no two servos share an id, and scan again",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_registers(args: argparse.Namespace, out=print) -> int:
    out(f"{'addr':>4} {'size':>4}  {'area':<7} {'acc':<3} {'default':>7}  name")
    for r in STS3215_REGISTERS:
        sign = f" (sign bit {r.sign_bit})" if r.sign_bit is not None else ""
        out(f"{r.address:>4} {r.size:>4}  {r.area.value:<7} {r.access.value:<3} {r.default:>7}  {r.name}{sign}")
    return 0


def cmd_read(args: argparse.Namespace, out=print) -> int:
    cfg = config_from(args, ReadConfig)
    regs = [register(n) for n in cfg.names] if cfg.names else [r for r in STS3215_REGISTERS]
    with _bus(cfg) as bus:
        values = bus.read_registers(cfg.id, regs, check_status=False)
        status = bus.read(cfg.id, "Status", check_status=False)
    for r in regs:
        unit = f" {r.unit}" if r.unit else ""
        out(f"{r.name:<48} {values[r.name]:>7}{unit}")
    if status and not cfg.names:
        from hardware.feetech import StatusBit

        out(f"status: {StatusBit(status).describe()}")
    return 0


def cmd_write(args: argparse.Namespace, out=print) -> int:
    cfg = config_from(args, WriteConfig)
    r = register(cfg.name)
    if cfg.broadcast:  # no servo answers a broadcast: nothing to wait for and nothing to read back
        with _bus(cfg) as bus:
            if cfg.persist:
                bus.write_eeprom(BROADCAST_ID, r, cfg.value)
            else:
                bus.write(BROADCAST_ID, r, cfg.value, check_status=False)
        out(
            f"broadcast: {r.name} = {cfg.value} sent to every servo on {cfg.port} (no servo answers a broadcast: "
            "`onboard bus read --id N` checks one)"
        )
        return 0
    with _bus(cfg) as bus:
        if cfg.persist:
            if r.area is not Area.EEPROM:
                out(f"note: {r.name} is in SRAM; --persist only matters for EEPROM registers")
            bus.write_eeprom(cfg.id, r, cfg.value)
        else:
            bus.write(cfg.id, r, cfg.value, check_status=False)
            if r.area is Area.EEPROM:
                out(f"note: {r.name} is in EEPROM; it is kept after power-off only if Lock is 0 (use --persist)")
        value = bus.read(cfg.id, r, check_status=False)
    out(f"servo {cfg.id}: {r.name} = {value}")
    return 0


def cmd_set_id(args: argparse.Namespace, out=print) -> int:
    cfg = config_from(args, SetIdConfig)
    with _bus(cfg) as bus:
        bus.set_id(cfg.id, cfg.new_id)
    out(f"servo {cfg.id} is now id {cfg.new_id}")
    return 0


def cmd_set_baud(args: argparse.Namespace, out=print) -> int:
    cfg = config_from(args, SetBaudConfig)
    with _bus(cfg) as bus:
        bus.set_baudrate(cfg.id, cfg.new_baud)
    out(f"servo {cfg.id} now talks at {cfg.new_baud} baud (the bus stays at {cfg.baud})")
    return 0


def setup_single_motor(bus: FeetechBus, new_id: int, new_baud: int, out: Callable[[str], object] = print) -> None:
    """Find the one servo on the bus (any baud, any id) and give it ``new_id`` and ``new_baud``."""
    found = []
    for baud in BAUD_RATES.values():
        bus.baudrate = baud
        answers = bus.broadcast_ping()
        if answers:
            found.extend((baud, i) for i in answers)
    if len(found) != 1:
        where = ", ".join(f"id {i} at {b} baud" for b, i in found) or "nothing"
        raise FeetechError(f"expected exactly one servo on the bus, found {where}: connect only the one to set up")
    baud, old_id = found[0]
    bus.baudrate = baud
    model = bus.model_number(old_id)
    if model != REGISTERS["Model_Number"].default:
        out(f"warning: model number {model}, expected 777 (STS3215)")
    bus.set_id(old_id, new_id)
    if new_baud != baud:
        bus.set_baudrate(new_id, new_baud)
    bus.baudrate = new_baud
    bus.ping(new_id)
    out(f"servo found at id {old_id}, {baud} baud -> id {new_id}, {new_baud} baud")


def cmd_setup_motor(args: argparse.Namespace, out=print) -> int:
    cfg = config_from(args, SetupMotorConfig)
    with _bus(cfg) as bus:
        setup_single_motor(bus, cfg.new_id, cfg.new_baud, out)
    return 0


def cmd_setup_motors(args: argparse.Namespace, out=print) -> int:
    cfg = config_from(args, BusOptions)
    with _bus(cfg) as bus:
        for name, motor_id in reversed(SO101_MOTORS.items()):
            input(f"Connect the controller board to the '{name}' motor ONLY and press Enter.")
            setup_single_motor(bus, motor_id, DEFAULT_BAUDRATE, out)
    out("all motors set up")
    return 0
