"""Device discovery: serial ports (pyserial's list, stable names, the unplug difference; no real or pseudo ports) and
cameras (/dev/video nodes probed through an injected capture, with their stable /dev/v4l names)."""

from __future__ import annotations

import pytest
from serial.tools.list_ports_common import ListPortInfo

from hardware.discovery import PortError, detect_unplugged_port, find_cameras, list_serial_ports, udev_rule
from tests.conftest import require


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


def test_find_cameras_probes_dev_video_nodes(tmp_path):
    require("cv2", "camera")
    from tests.hardware.test_opencv_camera import FakeDevice  # the cv2.VideoCapture-like device of the driver tests

    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    (dev / "v4l" / "by-id").mkdir(parents=True)
    for i in (0, 1, 2):
        (dev / f"video{i}").touch()
    (sysfs / "video0").mkdir(parents=True)
    (sysfs / "video0" / "name").write_text("USB Camera\n")
    (dev / "v4l" / "by-id" / "usb-Cam_123-video-index0").symlink_to(dev / "video0")
    world = {"plugged": True, "opens": 0, "releases": 0}

    def factory(index, api):
        d = FakeDevice(world)
        d.opened = index != 1  # video1: the metadata node of the same camera
        return d

    found = find_cameras(dev_root=str(dev), sys_root=str(sysfs), capture_factory=factory)
    assert [c["index"] for c in found] == [0, 2]
    c0 = found[0]
    assert c0["name"] == "USB Camera" and c0["by_id"] == [str(dev / "v4l" / "by-id" / "usb-Cam_123-video-index0")]
    assert (c0["width"], c0["height"], c0["fps"], c0["fourcc"]) == (640, 480, 30.0, "YUYV")
    assert world["opens"] == world["releases"] == 3
    assert len(find_cameras(dev_root=str(dev), sys_root=str(sysfs), capture_factory=factory, max_index=1)) == 1
    assert find_cameras(dev_root=str(tmp_path / "empty"), sys_root=str(sysfs), capture_factory=factory) == []
