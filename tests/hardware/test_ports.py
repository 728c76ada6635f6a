"""Serial port discovery: pyserial's list, stable names, and the unplug difference (no real or pseudo ports)."""

from __future__ import annotations

import pytest
from serial.tools.list_ports_common import ListPortInfo

from hardware.ports import PortError, detect_unplugged_port, list_serial_ports, udev_rule


def _usb_port(device: str, vid: int, pid: int, serial: str | None) -> ListPortInfo:
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.serial_number = vid, pid, serial
    p.manufacturer, p.product, p.description = "QinHeng", "USB Single Serial", "USB Single Serial"
    p.location = "1-1.2:1.0"
    return p


def test_list_serial_ports_with_none_and_with_the_real_pyserial():
    assert list_serial_ports(comports=lambda: []) == []
    for port in list_serial_ports():  # whatever this machine has (often nothing): it must not fail
        assert {"device", "vid_pid", "serial_number", "by_id"} <= port.keys()


def test_list_serial_ports_reports_what_a_udev_rule_needs(tmp_path):
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    dev = tmp_path / "ttyACM0"
    dev.touch()
    (by_id / "usb-1a86_USB_Single_Serial_5A46-if00").symlink_to(dev)
    plain = ListPortInfo("/dev/ttyS0", skip_link_detection=True)
    ports = list_serial_ports(
        comports=lambda: [_usb_port(str(dev), 0x1A86, 0x55D3, "5A46"), plain], by_id_dir=str(by_id)
    )
    assert [p["device"] for p in ports] == sorted([str(dev), "/dev/ttyS0"])
    usb = next(p for p in ports if p["device"] == str(dev))
    assert usb["vid_pid"] == "1a86:55d3" and usb["serial_number"] == "5A46"
    assert usb["by_id"] == [str(by_id / "usb-1a86_USB_Single_Serial_5A46-if00")]
    serial = next(p for p in ports if p["device"] == "/dev/ttyS0")
    assert serial["vid_pid"] is None and serial["by_id"] == [] and serial["description"] is None
    rule = udev_rule(usb, "so101_follower")
    assert 'ATTRS{idVendor}=="1a86"' in rule and 'ATTRS{idProduct}=="55d3"' in rule
    assert 'ATTRS{serial}=="5A46"' in rule and 'SYMLINK+="so101_follower"' in rule
    assert udev_rule(serial, "x") is None


def test_detect_unplugged_port():
    before = ["/dev/ttyACM0", "/dev/ttyACM1", "/dev/ttyS0"]
    assert detect_unplugged_port(before, ["/dev/ttyACM0", "/dev/ttyS0"]) == "/dev/ttyACM1"
    assert detect_unplugged_port([{"device": "/dev/ttyACM0"}], [{"device": "/dev/ttyACM9"}]) == "/dev/ttyACM0"
    with pytest.raises(PortError, match="no port disappeared"):
        detect_unplugged_port(before, before)
    with pytest.raises(PortError, match=r"several ports disappeared.*ttyACM0, /dev/ttyACM1"):
        detect_unplugged_port(before, ["/dev/ttyS0"])
    with pytest.raises(PortError, match="plug the board"):
        detect_unplugged_port([], [])
