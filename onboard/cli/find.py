"""`onboard find cameras` and `onboard find port`: which device is which. Prompts live here, never in hardware/."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.discovery import PortError, detect_unplugged_port, list_serial_ports, udev_rule
from onboard.cli.options import add_options, config_from


@dataclass(frozen=True)
class FindCamerasConfig:
    max_index: int = field(default=10, metadata={"flag": "--max-index", "help": "probe /dev/video0 .. /dev/video{N-1}"})


@dataclass(frozen=True)
class FindPortConfig:
    list: bool = field(default=False, metadata={"help": "only list the ports (no unplugging)"})
    name: str = field(default="so101_follower", metadata={"help": "symlink name for the suggested udev rule"})


def add_parser(sub: argparse._SubParsersAction) -> None:
    find = sub.add_parser("find", help="find cameras and the servo bus's serial port")
    fsub = find.add_subparsers(dest="find_cmd", required=True)
    p = fsub.add_parser("cameras", help="list OpenCV cameras with their default size/fps and stable /dev/v4l names")
    add_options(p, FindCamerasConfig)
    p.set_defaults(func=find_cameras_cli)
    p = fsub.add_parser("port", help="list serial ports; unplug the arm's board when asked to find which one it is")
    add_options(p, FindPortConfig)
    p.set_defaults(func=find_port_cli)


def find_cameras_cli(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    from hardware.discovery import find_cameras

    cams = find_cameras(max_index=config_from(args, FindCamerasConfig).max_index)
    if not cams:
        out(
            "no camera found. Check that it is plugged in, that you may read /dev/video* (on Linux: the 'video' "
            "group), and that no other program holds it."
        )
        return 1
    for c in cams:
        name = f"  {c['name']}" if c.get("name") else ""
        out(f"index {c['index']}  {c['path'] or ''}{name}")
        out(f"    default {c['width']}x{c['height']} at {c['fps']:g} fps, fourcc {c['fourcc']} ({c['backend']})")
        for link in c["by_id"] + c["by_path"]:
            out(f"    stable name: {link}")
    out("use the index or, better, a /dev/v4l/by-id name as the camera's index_or_path")
    return 0


def _describe(port: dict) -> str:
    extra = [v for v in (port["description"], port["vid_pid"] and f"VID:PID {port['vid_pid']}") if v]
    if port["serial_number"]:
        extra.append(f"serial {port['serial_number']}")
    return f"{port['device']}" + (f"  ({', '.join(extra)})" if extra else "")


def find_port_cli(
    args: argparse.Namespace,
    input_fn: Callable[[str], str] = input,
    out: Callable[[str], None] = print,
    list_ports: Callable[[], list[dict]] = list_serial_ports,
) -> int:
    cfg = config_from(args, FindPortConfig)
    before = list_ports()
    if not before:
        out("no serial ports found: plug in the board's USB cable and power it (on Linux check `dmesg`)")
        return 1
    out("serial ports:")
    for p in before:
        out(f"  {_describe(p)}")
        for link in p["by_id"]:
            out(f"    stable name: {link}")
    if cfg.list:
        return 0
    input_fn("Unplug the USB cable of the arm's board (leave the others), then press Enter... ")
    after = list_ports()
    try:
        device = detect_unplugged_port(before, after)
    except PortError as exc:
        out(f"error: {exc}")
        return 1
    port = next(p for p in before if p["device"] == device)
    out(f"the arm's port is {device}  (plug it back in)")
    stable = port["by_id"][0] if port["by_id"] else None
    if stable:
        out(f"stable name (survives re-plugging and reboots): {stable}")
    rule = udev_rule(port, cfg.name)
    if rule:
        out("or give it a name of your own with a udev rule (/etc/udev/rules.d/99-onboard.rules):")
        out(f"  {rule}")
        out("  then: sudo udevadm control --reload-rules && sudo udevadm trigger")
    out("on Linux, reading the port needs the 'dialout' group: sudo usermod -aG dialout $USER (then log in again)")
    return 0
