"""`onboard bus ...`: what a person assembling an arm needs: find servos, read and write registers by name, give
each servo its id and baud rate (what LeRobot's setup-motors does), on a real port or a simulated one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from hardware.feetech import BAUD_RATES, REGISTERS, STS3215_REGISTERS, FeetechError, register
from hardware.feetech.bus import DEFAULT_BAUDRATE, FeetechBus
from hardware.feetech.tables import Area

SO101_MOTORS = {  # LeRobot's SO-100/SO-101 motor ids (hardware.md §3)
    "shoulder_pan": 1,
    "shoulder_lift": 2,
    "elbow_flex": 3,
    "wrist_flex": 4,
    "wrist_roll": 5,
    "gripper": 6,
}


def parse_ids(text: str) -> list[int]:
    """'1-6', '1,3,5', '0-252' -> ids."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-", 1)
            ids.extend(range(int(lo), int(hi) + 1))
        elif part:
            ids.append(int(part))
    return ids


def add_parser(sub: argparse._SubParsersAction, port_help: str) -> None:
    bus = sub.add_parser("bus", help="talk to Feetech servos: scan, read/write registers, set ids and baud rates")
    bsub = bus.add_subparsers(dest="bus_cmd", required=True)

    def port_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--port", required=True, help=port_help)
        p.add_argument("--baud", type=int, default=DEFAULT_BAUDRATE, help="bus baud rate (default 1000000)")
        p.add_argument("--latency-ms", type=float, default=20.0, help="reply margin over the wire time (default 20)")

    p = bsub.add_parser("scan", help="find servos at every baud rate (or --baud) and id")
    port_args(p)
    p.add_argument("--all-bauds", action="store_true", help="scan every STS baud rate, not just --baud")
    p.add_argument("--ids", default="0-252", help="ids to try (default 0-252)")
    p.set_defaults(func=cmd_scan)

    p = bsub.add_parser("registers", help="list the STS3215 register map")
    p.set_defaults(func=cmd_registers)

    p = bsub.add_parser("read", help="read registers by name (all of them if none is named)")
    port_args(p)
    p.add_argument("--id", type=int, required=True)
    p.add_argument("names", nargs="*", help="register names, e.g. Present_Position Homing_Offset")
    p.set_defaults(func=cmd_read)

    p = bsub.add_parser("write", help="write a register by name")
    port_args(p)
    p.add_argument("--id", type=int, required=True)
    p.add_argument("name")
    p.add_argument("value", type=int)
    p.add_argument(
        "--persist", action="store_true", help="EEPROM: torque off, unlock, write, lock (survives power-off)"
    )
    p.set_defaults(func=cmd_write)

    p = bsub.add_parser("set-id", help="give one servo a new id (persistent)")
    port_args(p)
    p.add_argument("--id", type=int, required=True, help="current id")
    p.add_argument("--new-id", type=int, required=True)
    p.set_defaults(func=cmd_set_id)

    p = bsub.add_parser("set-baud", help="set one servo's baud rate (persistent)")
    port_args(p)
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--new-baud", type=int, required=True, choices=sorted(BAUD_RATES.values()))
    p.set_defaults(func=cmd_set_baud)

    p = bsub.add_parser(
        "setup-motor",
        help="with exactly one servo connected: find it at any baud rate and id, give it --new-id and --new-baud",
    )
    port_args(p)
    p.add_argument("--new-id", type=int, required=True)
    p.add_argument("--new-baud", type=int, default=DEFAULT_BAUDRATE, choices=sorted(BAUD_RATES.values()))
    p.set_defaults(func=cmd_setup_motor)

    p = bsub.add_parser(
        "setup-motors", help="SO-101 wizard: connect one motor at a time (gripper first) and press Enter for each"
    )
    port_args(p)
    p.set_defaults(func=cmd_setup_motors)


def _bus(args: argparse.Namespace) -> FeetechBus:
    return FeetechBus(args.port, args.baud, latency_s=args.latency_ms / 1000.0)


def cmd_scan(args: argparse.Namespace, out=print) -> int:
    bauds = list(BAUD_RATES.values()) if args.all_bauds else [args.baud]
    ids = parse_ids(args.ids)
    with _bus(args) as bus:

        def progress(baud: int, servo_id: int) -> None:
            if servo_id < 0:
                print(f"  scanning {baud} baud ...", file=sys.stderr, flush=True)

        found = bus.scan(ids, bauds, progress=progress)
    if not found:
        out(f"no servos found on {args.port} at {', '.join(map(str, bauds))} baud. Check power and cabling.")
        return 1
    out(f"{'baud':>8}  {'id':>3}  model     firmware")
    for f in found:
        out(f"{f.baudrate:>8}  {f.id:>3}  {f.model:<8}  {f.firmware}")
    return 0


def cmd_registers(args: argparse.Namespace, out=print) -> int:
    out(f"{'addr':>4} {'size':>4}  {'area':<7} {'acc':<3} {'default':>7}  name")
    for r in STS3215_REGISTERS:
        sign = f" (sign bit {r.sign_bit})" if r.sign_bit is not None else ""
        out(f"{r.address:>4} {r.size:>4}  {r.area.value:<7} {r.access.value:<3} {r.default:>7}  {r.name}{sign}")
    return 0


def cmd_read(args: argparse.Namespace, out=print) -> int:
    regs = [register(n) for n in args.names] if args.names else [r for r in STS3215_REGISTERS]
    with _bus(args) as bus:
        values = bus.read_registers(args.id, regs, check_status=False)
        status = bus.read(args.id, "Status", check_status=False)
    for r in regs:
        unit = f" {r.unit}" if r.unit else ""
        out(f"{r.name:<48} {values[r.name]:>7}{unit}")
    if status and not args.names:
        from hardware.feetech import StatusBit

        out(f"status: {StatusBit(status).describe()}")
    return 0


def cmd_write(args: argparse.Namespace, out=print) -> int:
    r = register(args.name)
    with _bus(args) as bus:
        if args.persist:
            if r.area is not Area.EEPROM:
                out(f"note: {r.name} is in SRAM; --persist only matters for EEPROM registers")
            bus.write_eeprom(args.id, r, args.value)
        else:
            bus.write(args.id, r, args.value, check_status=False)
            if r.area is Area.EEPROM:
                out(f"note: {r.name} is in EEPROM; it is kept after power-off only if Lock is 0 (use --persist)")
        value = bus.read(args.id, r, check_status=False)
    out(f"servo {args.id}: {r.name} = {value}")
    return 0


def cmd_set_id(args: argparse.Namespace, out=print) -> int:
    with _bus(args) as bus:
        bus.set_id(args.id, args.new_id)
    out(f"servo {args.id} is now id {args.new_id}")
    return 0


def cmd_set_baud(args: argparse.Namespace, out=print) -> int:
    with _bus(args) as bus:
        bus.set_baudrate(args.id, args.new_baud)
    out(f"servo {args.id} now talks at {args.new_baud} baud (the bus stays at {args.baud})")
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
    with _bus(args) as bus:
        setup_single_motor(bus, args.new_id, args.new_baud, out)
    return 0


def cmd_setup_motors(args: argparse.Namespace, out=print) -> int:
    with _bus(args) as bus:
        for name, motor_id in reversed(SO101_MOTORS.items()):
            input(f"Connect the controller board to the '{name}' motor ONLY and press Enter.")
            setup_single_motor(bus, motor_id, DEFAULT_BAUDRATE, out)
    out("all motors set up")
    return 0
