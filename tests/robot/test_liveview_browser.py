"""The live view in a real browser: `onboard teleoperate --display_data` runs in its own process against the twin that
`onboard sim serve --leader` serves in another (follower and leader on ptys, cameras by name, real time), and against
the in-process simulated rig (`--robot.port=sim`). The page it prints is opened in headless Chromium (Debian's
`chromium`, driven through the DevTools protocol over a pipe: no extra Python package), and the test looks at what the
page shows: both cameras' images loaded at the rig's camera size and their pixels changing, one plot per joint with
lines drawn and redrawn, the loop's time advancing. It saves a screenshot (the served twin's to docs/img/liveview.png
when ONBOARD_DOCS_IMG=1).

Needs `chromium` (scripts/setup.sh dev installs it as root): skipped without it, failed in CI
(ONBOARD_REQUIRE_INTEROP=1), like tests.conftest.require for Python packages."""

import base64
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from onboard.cli import main as onboard
from tests.conftest import require

require("mujoco", "sim")

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
VIEWPORT = (1040, 700)
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "liveview.png"


@pytest.fixture
def chromium() -> str:
    """The browser's path; before the rig starts, so that a missing browser skips (or fails) at once."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("ONBOARD_REQUIRE_INTEROP") == "1":
        pytest.fail("chromium is required here: apt-get install chromium (scripts/setup.sh dev does it as root)")
    pytest.skip("chromium not installed (apt-get install chromium)")


class Browser:
    """Headless Chromium with the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages ending in
    NUL, commands on its fd 3, replies and events on its fd 4)."""

    def __init__(self, exe: str, profile: Path, log: Path):
        flags = [
            "--headless",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={profile}",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self._log = log.open("wb")
        # fd 3 <- our stdin pipe, fd 4 -> our stdout pipe; its own stdin/stdout go nowhere
        self.proc = subprocess.Popen(
            ["sh", "-c", 'exec "$@" 3<&0 4>&1 </dev/null >/dev/null', "sh", exe, *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        self._buf = b""
        self._id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout_s: float = 60.0):
        self._id += 1
        msg: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read(deadline, method)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self, deadline: float, what: str) -> dict:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"chromium did not answer {what}")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium exited ({self.proc.poll()}) during {what}")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def open(self, url: str) -> str:
        """A new tab on ``url``; returns its session id."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        w, h = VIEWPORT
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        return session

    def evaluate(self, session: str, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# What the page shows, read in the page: each camera <img> (loaded, natural size, a hash of its decoded pixels drawn on
# a canvas, its caption), each joint plot's canvas (a hash of its pixels, how many are drawn, how many in the state
# line's blue and the action line's orange), and the status line.
PROBE = """(() => {
  const hash = d => { let x = 2166136261; for (let i = 0; i < d.length; i++) x = Math.imul(x ^ d[i], 16777619);
    return x >>> 0; };
  const cams = {};
  document.querySelectorAll('#cams img').forEach(im => {
    const loaded = im.complete && im.naturalWidth > 0;
    let pixels = null;
    if (loaded) {
      const c = document.createElement('canvas'); c.width = im.naturalWidth; c.height = im.naturalHeight;
      const g = c.getContext('2d'); g.drawImage(im, 0, 0);
      pixels = hash(g.getImageData(0, 0, c.width, c.height).data);
    }
    cams[im.title] = {loaded, w: im.naturalWidth, h: im.naturalHeight, shown_h: im.height, pixels,
      caption: im.parentNode.firstChild.textContent};
  });
  const plots = {};
  document.querySelectorAll('#plots .plot').forEach(div => {
    const c = div.querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let inked = 0, blue = 0, orange = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (!d[i + 3]) continue; inked++;
      if (d[i + 2] > d[i] + 80) blue++; if (d[i] > d[i + 2] + 80) orange++;
    }
    plots[div.firstChild.textContent.split(' ')[0]] = {pixels: hash(d), inked, blue, orange};
  });
  const status = document.getElementById('status');
  return {cams, plots, status: status ? status.textContent : ''};
})()"""


def _wait(browser: Browser, session: str, ok, what: str, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    shown = None
    while time.monotonic() < deadline:
        shown = browser.evaluate(session, PROBE)
        if ok(shown):
            return shown
        time.sleep(0.2)  # polling a condition, with a generous limit
    pytest.fail(f"the page never showed {what}; it showed: {json.dumps(shown)[:2000]}")


def _page_time(status: str) -> float:
    """The loop's time the page's status line shows ("t = 12.34 s"); -1 before it shows one."""
    return float(status[4:-2]) if status.startswith("t = ") and status.endswith(" s") else -1.0


class Child:
    """A command in its own process, its stdout and stderr going to files (never a pipe that could fill up)."""

    def __init__(self, args: list[str], folder: Path, name: str):
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "onboard.cli", *args],
                stdout=out,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
            )

    def wait_line(self, stream: str, prefix: str, timeout_s: float = 120.0) -> str:
        """The first line of ``stream`` ("out" or "err") that starts with ``prefix``, polled until it is written."""
        path = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in path.read_text().splitlines():
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"no line {prefix!r} (exit {self.proc.poll()}):\n{self.out.read_text()}\n{self.err.read_text()}")

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["served", "sim"])
def teleop(request, tmp_path):
    """`onboard teleoperate --display_data` in its own process, against ("served") the twin that `onboard sim serve
    --leader` serves in another process (follower and leader on ptys, cameras by name, in real time; the leader moved
    by the scripted expert) or ("sim") the in-process simulated rig of `--robot.port=sim` (on the sim clock).
    Yields (rig, process, live-view URL)."""
    children: list[Child] = []
    cal = f"calibration_dir={tmp_path}"
    try:
        if request.param == "served":
            prefix = f"lv{uuid.uuid4().hex[:8]}"  # camera names of our own: tests may run side by side
            args = ["sim", "serve", "--calibrated", "--robot.id=f", f"--robot.{cal}", "--leader", "--leader.id=l"]
            serve = Child([*args, f"--leader.{cal}", f"--cameras.prefix={prefix}", "--duration=600"], tmp_path, "serve")
            children.append(serve)
            serve.wait_line("err", "simulated SO-101")  # its last line before serving
            follower, leader = serve.out.read_text().split()[:2]
            cameras = f"{{front: {{type: sim, name: {prefix}.front}}, wrist: {{type: sim, name: {prefix}.wrist}}}}"
            rig = [f"--robot.port={follower}", f"--teleop.port={leader}", f"--robot.cameras={cameras}", "--fps=30"]
        else:
            for kind, arm, name in (("robot", "so101_follower", "f"), ("teleop", "so101_leader", "l")):
                args = [f"--{kind}.type={arm}", f"--{kind}.port=sim", f"--{kind}.id={name}", f"--{kind}.{cal}"]
                assert onboard(["calibrate", *args]) == 0
            rig = ["--robot.port=sim", "--teleop.port=sim"]
        arms = ["--robot.id=f", f"--robot.{cal}", "--teleop.id=l", f"--teleop.{cal}"]
        loop = Child(["teleoperate", *rig, *arms, "--display_data", "--teleop_time_s=600"], tmp_path, "teleoperate")
        children.append(loop)
        url = loop.wait_line("err", "live view: ").split("live view: ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield request.param, loop.proc, url
    finally:
        for child in reversed(children):
            child.stop()


def test_live_view_in_headless_chromium(chromium, teleop, tmp_path):
    rig, proc, url = teleop
    browser = Browser(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        session = browser.open(url)

        def complete(s):
            return (
                set(s["cams"]) == {"front", "wrist"}
                and all(c["loaded"] for c in s["cams"].values())
                and all(" " in c["caption"] for c in s["cams"].values())  # the caption is set by the image's onload
                and set(s["plots"]) == set(JOINTS)
                and _page_time(s["status"]) >= 0
            )

        first = _wait(browser, session, complete, "both cameras loaded and a plot per joint")
        assert 0 <= _page_time(first["status"]) < 600  # the loop's time since its first sample, not its clock's
        for name, cam in first["cams"].items():  # the rig's cameras at their size (96x96 by default), shown 2.5x
            assert (cam["w"], cam["h"]) == (96, 96), name
            assert cam["shown_h"] == 240 and cam["caption"] == f"{name} 96x96", cam
        for joint, plot in first["plots"].items():
            assert plot["inked"] > 100 and plot["blue"] + plot["orange"] > 20, (joint, plot)

        def changed(s):
            return (
                complete(s)
                and all(s["cams"][n]["pixels"] != first["cams"][n]["pixels"] for n in first["cams"])
                and all(s["plots"][j]["pixels"] != first["plots"][j]["pixels"] for j in JOINTS)
                and _page_time(s["status"]) > _page_time(first["status"])
            )

        later = _wait(browser, session, changed, "new camera images, redrawn plots and a later time")
        assert later["status"] != first["status"]
        assert proc.poll() is None, "the loop stopped while the page was open"

        png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == VIEWPORT
        (tmp_path / "liveview.png").write_bytes(png)
        if os.environ.get("ONBOARD_DOCS_IMG") == "1" and rig == "served":
            DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
            DOCS_IMG.write_bytes(png)
    finally:
        browser.close()
