"""`onboard find port` / `onboard find cameras` with injected port lists and prompts (no hardware)."""

from __future__ import annotations

import argparse

from onboard.cli import find as find_cli


def _port(device, vid_pid="1a86:55d3", serial="5A46", by_id=()):
    return {
        "device": device,
        "description": "USB Single Serial",
        "vid_pid": vid_pid,
        "serial_number": serial,
        "manufacturer": None,
        "product": None,
        "location": None,
        "by_id": list(by_id),
    }


def test_find_port_after_unplugging():
    snapshots = iter(
        [
            [_port("/dev/ttyACM0", by_id=["/dev/serial/by-id/usb-1a86-if00"]), _port("/dev/ttyACM1", serial="77")],
            [_port("/dev/ttyACM1", serial="77")],
        ]
    )
    prompts, lines = [], []
    rc = find_cli.find_port_cli(
        argparse.Namespace(list=False, name="follower"),
        input_fn=prompts.append,
        out=lines.append,
        list_ports=lambda: next(snapshots),
    )
    text = "\n".join(lines)
    assert rc == 0 and len(prompts) == 1 and "Unplug" in prompts[0]
    assert "the arm's port is /dev/ttyACM0" in text
    assert "/dev/serial/by-id/usb-1a86-if00" in text and 'SYMLINK+="follower"' in text


def test_find_port_when_nothing_changes_or_no_ports():
    lines = []
    same = [_port("/dev/ttyACM0")]
    rc = find_cli.find_port_cli(
        argparse.Namespace(list=False, name="x"), input_fn=lambda _: "", out=lines.append, list_ports=lambda: same
    )
    assert rc == 1 and "no port disappeared" in lines[-1]
    lines.clear()
    assert find_cli.find_port_cli(argparse.Namespace(), input_fn=None, out=lines.append, list_ports=list) == 1
    assert "no serial ports" in lines[0]


def test_find_port_list_only_does_not_prompt():
    lines = []
    rc = find_cli.find_port_cli(
        argparse.Namespace(list=True), input_fn=None, out=lines.append, list_ports=lambda: [_port("/dev/ttyACM0")]
    )
    assert rc == 0 and "VID:PID 1a86:55d3" in lines[1]


def test_parser_registers_find_commands():
    parser = argparse.ArgumentParser()
    find_cli.add_parser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["find", "port", "--list"])
    assert args.func is find_cli.find_port_cli and args.list
    args = parser.parse_args(["find", "cameras", "--max-index", "4"])
    assert args.func is find_cli.find_cameras_cli and args.max_index == 4
