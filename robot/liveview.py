"""Live view of a running loop (teleop, recording): joint plots and camera images in a browser, never blocking it.

    with LiveView(port=0) as view:                 # http://127.0.0.1:PORT/ (view.url), local only
        print("live view:", view.url)
        def on_tick(tick, stats):
            view.publish(tick.start, state, action, {"front": frame.rgb, ...})
        loop.run(step, duration_s=60, on_tick=on_tick)

The control thread only hands the newest sample over: ``publish`` stores references in a bounded deque and in a
"latest" slot (each one assignment or append, no lock, no copy, no encoding, no I/O), so it costs microseconds and
cannot wait on a browser. Everything else happens on the server's threads (stdlib ``http.server``, bound to
127.0.0.1 only): ``/state.json`` serves the joint history, ``/camera/<name>.png`` encodes the newest image of a
camera when asked (a small pure-numpy PNG writer on ``zlib``; one encoding per new frame, shared by all clients),
and ``/`` is a page that polls both and plots with a canvas (no third-party scripts: it works offline).

Images are taken as they are (``uint8`` HxWx3 RGB or HxW gray): do not write into an array after publishing it
(camera frames are new arrays per frame, as ``hardware.camera`` and ``sim.twin.cameras`` produce them).

``RerunView`` (when ``rerun-sdk`` is installed) logs the same samples to a rerun viewer from its own thread, like
LeRobot's ``--display_data``.
"""

from __future__ import annotations

import json
import math
import struct
import threading
import zlib
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

HISTORY = 600  # samples kept for the plots (20 s at 30 Hz)
CLIENT_TIMEOUT_S = 10.0  # a client that neither sends its request nor reads the reply is dropped after this


# ------------------------------------------------------------------------------------------------------ PNG
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of a ``uint8`` image: HxW (gray), HxWx3 (RGB) or HxWx4 (RGBA). Filter 0 on every row, zlib
    ``level`` (1: fast; camera frames are small and change every frame)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {a.dtype}")
    if a.ndim == 2:
        color = 0
        a = a[:, :, None]
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        color = 2 if a.shape[2] == 3 else 6
    else:
        raise ValueError(f"images must be HxW, HxWx3 or HxWx4, got shape {a.shape}")
    h, w, c = a.shape
    if h == 0 or w == 0:
        raise ValueError(f"empty image {a.shape}")
    rows = np.zeros((h, 1 + w * c), np.uint8)  # a filter-type byte (0: none) before every row
    rows[:, 1:] = a.reshape(h, w * c)
    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
        + _chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------------------------- samples
def _plain(values: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for k, v in values.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[str(k)] = f if math.isfinite(f) else None  # JSON has no NaN
    return out


class LiveView:
    """A local web page showing the joints and cameras of a running loop (see the module doc).

    ``port``: 0 picks a free one (``url`` says which). ``history``: samples kept for the plots. The server listens
    on 127.0.0.1 only. Cheap to construct; ``start()`` (or ``with``) binds the port and starts the server thread.
    """

    def __init__(self, port: int = 0, *, history: int = HISTORY, title: str = "onboard live view"):
        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be 0..65535 (0: any free port), got {port!r}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history!r}")
        self.port = int(port)
        self.title = title
        self._history: deque[tuple[int, float, dict, dict]] = deque(maxlen=int(history))
        self._images: dict[str, tuple[int, np.ndarray]] = {}  # camera -> (seq, newest image)
        self._seq = 0
        self._t0: float | None = None  # the first sample's time: the page shows times since it
        self._png: dict[str, tuple[int, bytes]] = {}  # camera -> (seq, PNG) cache, written by server threads
        self._png_lock = threading.Lock()  # server threads only: one encoding per new frame
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.published = 0

    # --- lifecycle ------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("LiveView is not started: call start() or use `with LiveView() as view:`")
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def start(self) -> str:
        """Bind 127.0.0.1:``port`` and serve from a daemon thread; returns the page's URL."""
        if self._server is not None:
            return self.url
        view = self

        class Handler(_Handler):
            live = view

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True  # a stuck client never holds up stop() or the interpreter's exit
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.name = "liveview-http"
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and close the port (clients in flight are dropped)."""
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> LiveView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the control thread's side ----------------------------------------------------------------------------
    def publish(
        self,
        t: float,
        state: Mapping[str, float],
        action: Mapping[str, float] | None = None,
        images: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Hand over one sample: time ``t`` (s), joint ``state`` and ``action`` (``{"<motor>.pos": value}``) and
        the newest camera images. No copy, no encoding, no lock, no I/O: safe to call every tick."""
        self._seq += 1
        seq = self._seq
        if self._t0 is None:
            self._t0 = float(t)
        self._history.append((seq, float(t), state, action or {}))  # deque.append: atomic under the GIL
        if images:
            for name, image in images.items():
                if image is not None:
                    self._images[name] = (seq, image)  # one dict store per camera: atomic under the GIL
        self.published = seq

    # --- the server's side ------------------------------------------------------------------------------------
    def snapshot(self, since: int = 0) -> dict:
        """What ``/state.json`` serves: samples newer than ``since`` (seq numbers), the cameras' newest seq, and
        ``t0``, the first sample's time (the page shows times since it: a wall clock's ``t`` is its monotonic time)."""
        for _ in range(10):
            try:
                samples = list(self._history)  # may race with an append: then copy again
                break
            except RuntimeError:
                continue
        else:
            samples = []
        cameras = {name: seq for name, (seq, _) in list(self._images.items())}
        return {
            "title": self.title,
            "seq": samples[-1][0] if samples else 0,
            "t0": self._t0,
            "samples": [
                {"seq": s, "t": t, "state": _plain(st), "action": _plain(ac)} for s, t, st, ac in samples if s > since
            ],
            "cameras": cameras,
        }

    def camera_png(self, name: str) -> tuple[int, bytes] | None:
        """(seq, PNG) of camera ``name``'s newest image, encoded once per new image; None if it has none."""
        entry = self._images.get(name)
        if entry is None:
            return None
        seq, image = entry
        with self._png_lock:
            cached = self._png.get(name)
            if cached is not None and cached[0] == seq:
                return cached
        png = encode_png(image)
        with self._png_lock:
            cached = self._png.get(name)
            if cached is None or cached[0] < seq:
                self._png[name] = (seq, png)
        return seq, png


class _Handler(BaseHTTPRequestHandler):
    live: LiveView
    timeout = CLIENT_TIMEOUT_S
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: a library does not print
        pass

    def _send(self, code: int, body: bytes, content_type: str, extra: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        path = url.path
        try:
            if path in ("/", "/index.html"):
                self._send(200, _page(self.live.title).encode(), "text/html; charset=utf-8")
            elif path == "/state.json":
                since = int(parse_qs(url.query).get("since", ["0"])[0])
                body = json.dumps(self.live.snapshot(since), allow_nan=False).encode()
                self._send(200, body, "application/json")
            elif path.startswith("/camera/") and path.endswith(".png"):
                found = self.live.camera_png(unquote(path[len("/camera/") : -len(".png")]))
                if found is None:
                    self._send(404, b"no such camera (yet)\n", "text/plain")
                else:
                    self._send(200, found[1], "image/png", {"X-Seq": str(found[0])})
            else:
                self._send(404, b"not found: try / , /state.json or /camera/<name>.png\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away or stalled: nothing to do
        except ValueError as exc:
            self._send(400, f"bad request: {exc}\n".encode(), "text/plain")


def _page(title: str) -> str:
    return _PAGE.replace("__TITLE__", json.dumps(title)[1:-1].replace("<", "&lt;"))


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body{font:13px system-ui,sans-serif;margin:12px;background:#111;color:#ddd}
.cam{display:inline-block;margin:0 8px 8px 0}
.cam img{display:block;height:240px;image-rendering:pixelated;border:1px solid #333}
.plot{display:inline-block;margin:0 8px 8px 0}.plot canvas{background:#1b1b1b;border:1px solid #333}
.legend span{margin-right:8px}
</style></head><body>
<h3>__TITLE__ <small id="status"></small></h3>
<div id="cams"></div><div id="plots"></div>
<script>
const N = 600; let since = 0; let t0 = null; let samples = []; const imgs = {}; const plots = {}; const camSeq = {};
function plot(key) {
  if (plots[key]) return plots[key];
  const div = document.createElement('div'); div.className = 'plot';
  div.innerHTML = '<div>' + key + ' <span class="legend"><span style="color:#4af">state</span>' +
    '<span style="color:#fa4">action</span></span></div>';
  const c = document.createElement('canvas'); c.width = 320; c.height = 120; div.appendChild(c);
  document.getElementById('plots').appendChild(div); return plots[key] = c;
}
function draw() {
  const keys = new Set(); samples.forEach(s => { Object.keys(s.state).forEach(k => keys.add(k));
    Object.keys(s.action).forEach(k => keys.add(k)); });
  if (!samples.length) return;
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t || t0 + 1;
  keys.forEach(key => {
    const c = plot(key), g = c.getContext('2d'); g.clearRect(0, 0, c.width, c.height);
    let lo = Infinity, hi = -Infinity;
    samples.forEach(s => [s.state[key], s.action[key]].forEach(v => { if (v != null) { lo = Math.min(lo, v);
      hi = Math.max(hi, v); } }));
    if (!isFinite(lo)) return; if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
    const x = t => (t - t0) / Math.max(t1 - t0, 1e-6) * (c.width - 4) + 2;
    const y = v => c.height - 4 - (v - lo) / (hi - lo) * (c.height - 8);
    [['state', '#4af'], ['action', '#fa4']].forEach(([f, color]) => {
      g.strokeStyle = color; g.beginPath(); let on = false;
      samples.forEach(s => { const v = s[f][key]; if (v == null) { on = false; return; }
        if (on) g.lineTo(x(s.t), y(v)); else g.moveTo(x(s.t), y(v)); on = true; });
      g.stroke(); });
    g.fillStyle = '#888'; g.fillText(hi.toFixed(1), 4, 12); g.fillText(lo.toFixed(1), 4, c.height - 6);
  });
}
async function poll() {
  try {
    const r = await fetch('state.json?since=' + since, {cache: 'no-store'}); const d = await r.json();
    if (d.t0 != null) t0 = d.t0;
    samples = samples.concat(d.samples).slice(-N); if (d.samples.length) since = d.samples[d.samples.length - 1].seq;
    for (const [name, seq] of Object.entries(d.cameras)) {
      if (!imgs[name]) { const div = document.createElement('div'); div.className = 'cam';
        const cap = document.createElement('div'); cap.textContent = name; const im = document.createElement('img');
        im.title = name; im.onload = () => { cap.textContent = name + ' ' + im.naturalWidth + 'x' + im.naturalHeight; };
        div.appendChild(cap); div.appendChild(im); document.getElementById('cams').appendChild(div); imgs[name] = im; }
      if (camSeq[name] !== seq) { camSeq[name] = seq; imgs[name].src = 'camera/' + encodeURIComponent(name) +
        '.png?seq=' + seq; }
    }
    document.getElementById('status').textContent = samples.length ?
      't = ' + (samples[samples.length - 1].t - (t0 ?? 0)).toFixed(2) + ' s' : 'waiting for data';
    draw();
  } catch (e) { document.getElementById('status').textContent = 'disconnected'; }
  setTimeout(poll, 100);
}
poll();
</script></body></html>
"""


# ------------------------------------------------------------------------------------------------- rerun
class RerunView:
    """The same ``publish`` API, logging to rerun (``rerun-sdk``) from a thread of its own at ``max_hz``: the
    newest sample only, so a slow viewer never slows the loop. ``spawn=True`` opens the rerun viewer;
    otherwise ``save`` names an ``.rrd`` file to record to (or neither: rerun's default sink)."""

    def __init__(self, app_id: str = "onboard", *, spawn: bool = True, save: str | None = None, max_hz: float = 30.0):
        self.app_id, self.spawn, self.save, self.max_hz = app_id, spawn, save, float(max_hz)
        self._latest: tuple[float, Mapping, Mapping, Mapping] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rr: Any = None

    def start(self) -> None:
        try:
            import rerun as rr
        except ImportError as exc:
            raise ImportError("RerunView needs rerun-sdk: pip install rerun-sdk (or use LiveView)") from exc
        self._rr = rr
        rr.init(self.app_id, spawn=self.spawn)
        if self.save:
            rr.save(self.save)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="liveview-rerun", daemon=True)
        self._thread.start()

    def publish(self, t: float, state: Mapping, action: Mapping | None = None, images: Mapping | None = None) -> None:
        self._latest = (float(t), state, action or {}, images or {})  # one assignment: the handover

    def _run(self) -> None:
        rr, last = self._rr, None
        period = 1.0 / self.max_hz
        while not self._stop.wait(period):
            sample = self._latest
            if sample is None or sample is last:
                continue
            last = sample
            t, state, action, images = sample
            rr.set_time("t", duration=t)
            for prefix, values in (("state", state), ("action", action)):
                for k, v in _plain(values).items():
                    if v is not None:
                        rr.log(f"{prefix}/{k}", rr.Scalars(v))
            for name, image in images.items():
                if image is not None:
                    rr.log(f"camera/{name}", rr.Image(image))

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()

    def __enter__(self) -> RerunView:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
