"""robot.liveview: the page, the JSON and the camera images over HTTP on 127.0.0.1; publish never waits on a client.
No speed asserts."""

import json
import socket
import struct
import threading
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest

from robot.liveview import LiveView, encode_png
from tests.conftest import require

KEYS = ("shoulder_pan.pos", "gripper.pos")


def get(url: str) -> tuple[int, dict, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def decode_png(data: bytes) -> np.ndarray:
    """Just enough of a PNG reader for encode_png's output (8-bit, filter 0 on every row)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, color = header[:4]
    c = {0: 1, 2: 3, 6: 4}[color]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    assert depth == 8 and not rows[:, 0].any()
    return rows[:, 1:].reshape(h, w, c).squeeze()


def test_png_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(rgb)), rgb)
    gray = rgb[..., 0].copy()
    assert np.array_equal(decode_png(encode_png(gray)), gray)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(rgb.astype(np.float32))


def test_page_json_and_images_over_http():
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :, 0] = 200
    with LiveView(port=0) as view:
        url = view.url
        assert url.startswith("http://127.0.0.1:")
        for k in range(5):
            view.publish(100 + 0.1 * k, {KEYS[0]: float(k), KEYS[1]: 50.0}, {KEYS[0]: k + 0.5}, {"front": rgb})

        status, headers, body = get(url)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b"state.json" in body and b"canvas" in body

        data = json.loads(get(url + "state.json")[2])
        assert data["seq"] == 5 and [s["seq"] for s in data["samples"]] == [1, 2, 3, 4, 5]
        last = data["samples"][-1]
        assert last["t"] == pytest.approx(100.4) and data["t0"] == 100.0  # the page shows t - t0
        assert last["state"] == {KEYS[0]: 4.0, KEYS[1]: 50.0} and last["action"] == {KEYS[0]: 4.5}
        assert data["cameras"] == {"front": 5}
        assert [s["seq"] for s in json.loads(get(url + "state.json?since=3")[2])["samples"]] == [4, 5]

        status, headers, png = get(url + "camera/front.png")
        assert headers["Content-Type"] == "image/png" and headers["X-Seq"] == "5"
        assert np.array_equal(decode_png(png), rgb)

        newer = rgb.copy()
        newer[0, 0] = (1, 2, 3)
        view.publish(0.5, {KEYS[0]: float("nan")}, None, {"front": newer})
        data = json.loads(get(url + "state.json?since=5")[2])
        assert data["samples"][0]["state"] == {KEYS[0]: None}  # NaN is not JSON
        assert np.array_equal(decode_png(get(url + "camera/front.png")[2]), newer)

        for bad in ("camera/wrist.png", "nothing"):
            with pytest.raises(urllib.error.HTTPError) as err:
                get(url + bad)
            assert err.value.code == 404
    with pytest.raises(RuntimeError, match="not started"):
        _ = view.url


def test_publish_does_not_wait_on_slow_clients():
    big = np.random.default_rng(1).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)  # ~6.7 MB of PNG
    with LiveView(port=0) as view:
        port = int(view.url.rsplit(":", 1)[1].strip("/"))
        view.publish(0.0, {KEYS[0]: 0.0}, {}, {"front": big})
        silent = socket.create_connection(("127.0.0.1", port))  # connects, never sends a request
        stalled = socket.create_connection(("127.0.0.1", port))  # asks for a big image, never reads it
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /camera/front.png HTTP/1.0\r\n\r\n")
        try:
            done = threading.Event()

            def control_loop() -> None:
                for k in range(2000):
                    view.publish(k * 0.01, {KEYS[0]: float(k)}, {KEYS[0]: float(k)}, {"front": big})
                done.set()

            thread = threading.Thread(target=control_loop, daemon=True)
            thread.start()
            assert done.wait(30), "publish waited on a client"
            # and the server still answers others meanwhile
            data = json.loads(get(view.url + "state.json?since=1990")[2])
            assert data["samples"][-1]["seq"] == 2001
        finally:
            silent.close()
            stalled.close()


def test_rerun_view_records_to_a_file(tmp_path):
    require("rerun", "interop")  # rerun-sdk comes with LeRobot
    from robot.liveview import RerunView

    out = tmp_path / "live.rrd"
    with RerunView(spawn=False, save=str(out), max_hz=200.0) as view:
        for k in range(5):
            view.publish(0.1 * k, {KEYS[0]: float(k)}, {KEYS[0]: k + 0.5}, {"front": np.zeros((8, 8, 3), np.uint8)})
            threading.Event().wait(0.02)
    import rerun as rr

    rr.disconnect()
    assert out.exists() and out.stat().st_size > 0
