"""The parent side of an emulator served by a child process: start it, talk JSON lines over its stdin/stdout, stop it.

Used by ``sim.process.bus.BusProcess`` (emulated servos on a pty) and ``sim.process.so101.SO101Process`` (the
simulated arm on a pty). The child is ``python -m <module> <spec as JSON>`` with this process's ``sys.path``; its first
line is ``{"path": "/dev/pts/N"}``, then one JSON reply line per request line. Pickle never crosses the channel.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys


class ChildServer:
    module = ""  # the child's module, run with -m
    what = "the child process"  # for error messages

    def __init__(self, spec: dict, start_timeout_s: float):
        self.spec = spec
        self.start_timeout_s = float(start_timeout_s)
        self.path: str | None = None
        self._proc: subprocess.Popen | None = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        if self._proc is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module, json.dumps(self.spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            bufsize=1,
        )
        try:
            self.path = self._reply(self.start_timeout_s)["path"]
        except BaseException:
            self.stop()
            raise
        return self.path

    def stop(self) -> None:
        """Close the control channel (the child's request loop ends: it stops its server and exits); terminate, then
        kill, if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _reply(self, timeout_s: float) -> dict:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use `with {type(self).__name__}(...) as x:`")
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline() if ready else ""
        if not line:
            code = proc.poll()
            why = f"exited with code {code}" if code is not None else f"did not answer within {timeout_s} s"
            raise RuntimeError(f"{self.what} {why}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.what}: {reply['error']}")
        return reply

    def _send(self, message: dict, timeout_s: float) -> dict:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError(f"{type(self).__name__} is not running: use `with {type(self).__name__}(...) as x:`")
        proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        return self._reply(timeout_s)
