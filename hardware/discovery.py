"""Which device is which: the servo bus's serial port and the cameras. What ``onboard find port`` and ``onboard find
cameras`` need, without prompts (those live in the CLI).

``list_serial_ports()`` reports, for each port, what writing a udev rule needs (USB VID:PID, serial number, the
stable /dev/serial/by-id link); ``detect_unplugged_port(before, after)`` is LeRobot's "unplug the board and press
Enter" difference. ``find_cameras()`` probes the /dev/video nodes with OpenCV and reports each camera's default mode
and its stable /dev/v4l/by-id and by-path names. Both answer the same question for a person wiring up a robot
(which /dev name is this device, and which name survives re-plugging), so they live together; the camera driver
itself (capture thread, latest frame, reconnect) is ``hardware.opencv_camera``.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from hardware.opencv_config import CaptureFactory, fourcc_text, import_cv2

__all__ = ["PortError", "detect_unplugged_port", "find_cameras", "list_serial_ports", "udev_rule"]


# -- serial ports ------------------------------------------------------------------------------------------------


class PortError(RuntimeError):
    """A serial port could not be identified."""


def _by_id_links(by_id_dir: str) -> dict[str, list[str]]:
    links: dict[str, list[str]] = {}
    for link in sorted(glob.glob(os.path.join(by_id_dir, "*"))):
        links.setdefault(os.path.realpath(link), []).append(link)
    return links


def list_serial_ports(
    *,
    comports: Callable[[], Iterable[Any]] | None = None,
    by_id_dir: str = "/dev/serial/by-id",
) -> list[dict[str, Any]]:
    """Every serial port pyserial sees, sorted by device: ``device``, ``description``, ``vid_pid`` ('1a86:55d3' or
    None for a port that is not USB), ``serial_number``, ``manufacturer``, ``product``, ``location``, ``by_id`` (the
    /dev/serial/by-id links to it). An empty list when there are none. ``comports`` replaces
    ``serial.tools.list_ports.comports`` (tests)."""
    if comports is None:
        from serial.tools import list_ports

        comports = list_ports.comports
    links = _by_id_links(by_id_dir)
    ports = []
    for p in comports():
        vid, pid = getattr(p, "vid", None), getattr(p, "pid", None)
        device = p.device
        desc = getattr(p, "description", None)
        ports.append(
            {
                "device": device,
                "description": None if desc in (None, "n/a") else desc,
                "vid_pid": f"{vid:04x}:{pid:04x}" if vid is not None and pid is not None else None,
                "serial_number": getattr(p, "serial_number", None),
                "manufacturer": getattr(p, "manufacturer", None),
                "product": getattr(p, "product", None),
                "location": getattr(p, "location", None),
                "by_id": links.get(os.path.realpath(device), []),
            }
        )
    return sorted(ports, key=lambda d: d["device"])


def _devices(ports: Iterable[str | dict[str, Any]]) -> set[str]:
    return {p if isinstance(p, str) else p["device"] for p in ports}


def detect_unplugged_port(before: Iterable[str | dict[str, Any]], after: Iterable[str | dict[str, Any]]) -> str:
    """The one port present ``before`` and gone ``after`` (device names, or ``list_serial_ports()`` entries).
    Raises ``PortError`` when none or several disappeared."""
    before_set, after_set = _devices(before), _devices(after)
    gone = sorted(before_set - after_set)
    if len(gone) == 1:
        return gone[0]
    if not gone:
        if not before_set:
            raise PortError(
                "no serial port was there to begin with: plug the board's USB cable in (and power it) first; on Linux "
                "check `dmesg` for a ttyACM/ttyUSB device"
            )
        raise PortError(
            f"no port disappeared (ports before and after: {', '.join(sorted(before_set))}). Unplug the board's USB "
            "cable (not just its power) before pressing Enter."
        )
    raise PortError(f"several ports disappeared ({', '.join(gone)}): unplug only the one board and try again")


def udev_rule(port: dict[str, Any], symlink: str) -> str | None:
    """A udev rule giving ``port`` (a ``list_serial_ports()`` entry) the stable name /dev/``symlink``; None when the
    port is not USB. Put it in /etc/udev/rules.d/99-onboard.rules, then `sudo udevadm control --reload-rules &&
    sudo udevadm trigger`."""
    if not port.get("vid_pid"):
        return None
    vid, pid = port["vid_pid"].split(":")
    parts = ['SUBSYSTEM=="tty"', f'ATTRS{{idVendor}}=="{vid}"', f'ATTRS{{idProduct}}=="{pid}"']
    if port.get("serial_number"):
        parts.append(f'ATTRS{{serial}}=="{port["serial_number"]}"')
    parts += [f'SYMLINK+="{symlink}"', 'MODE="0660"', 'GROUP="dialout"']
    return ", ".join(parts)


# -- cameras -----------------------------------------------------------------------------------------------------


def _v4l_links(dev_root: str) -> dict[str, dict[str, list[str]]]:
    """/dev/videoN -> {"by_id": [...], "by_path": [...]} from udev's stable links."""
    links: dict[str, dict[str, list[str]]] = {}
    for kind in ("by-id", "by-path"):
        for link in sorted(glob.glob(os.path.join(dev_root, "v4l", kind, "*"))):
            target = os.path.realpath(link)
            links.setdefault(target, {"by_id": [], "by_path": []})[kind.replace("-", "_")].append(link)
    return links


def find_cameras(
    max_index: int = 10,
    *,
    dev_root: str = "/dev",
    sys_root: str = "/sys/class/video4linux",
    capture_factory: CaptureFactory | None = None,
    include_unopened: bool = False,
) -> list[dict[str, Any]]:
    """Probe camera indices 0..max_index-1 (on Linux, those with a /dev/videoN) and report each one that opens with
    its default size, fps and FOURCC, its /dev/v4l/by-id and by-path links (stable names across reboots and
    re-plugging) and its name. A UVC camera often has a second /dev/video node for metadata that does not open; such
    nodes are left out unless ``include_unopened``."""
    cv2 = import_cv2()
    linux = sys.platform.startswith("linux")
    if linux:
        indices = sorted(
            int(m.group(1))
            for p in glob.glob(os.path.join(dev_root, "video*"))
            if (m := re.fullmatch(r"video(\d+)", os.path.basename(p))) and int(m.group(1)) < max_index
        )
    else:
        indices = list(range(max_index))
    links = _v4l_links(dev_root)
    found = []
    for i in indices:
        path = os.path.join(dev_root, f"video{i}")
        info: dict[str, Any] = {"index": i, "path": path if linux else None}
        info.update(links.get(os.path.realpath(path), {"by_id": [], "by_path": []}))
        try:
            with open(os.path.join(sys_root, f"video{i}", "name")) as f:
                info["name"] = f.read().strip()
        except OSError:
            info["name"] = None
        cap = capture_factory(i, 0) if capture_factory is not None else cv2.VideoCapture(i)
        try:
            info["opened"] = bool(cap.isOpened())
            if info["opened"]:
                info["width"] = round(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
                info["height"] = round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                info["fps"] = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
                info["fourcc"] = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
                try:
                    info["backend"] = cap.getBackendName()
                except Exception:
                    info["backend"] = None
        finally:
            cap.release()
        if info["opened"] or include_unopened:
            found.append(info)
    return found
