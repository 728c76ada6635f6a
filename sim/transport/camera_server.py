"""The twin's cameras as devices: a thread renders MuJoCo cameras of a ``World`` in real time and publishes every frame
through the shared-memory camera transport (``hardware.shm_camera``), so any process on the machine reads them by
name as it would read a USB camera (`onboard sim serve`).

    server = CameraServer(world, {"front": "front", "wrist": "wrist"}, height=96, width=96, fps=30).start()
    ...                                    # other processes: ShmCamera("front").connect()
    server.stop()

Frame k is due at ``t0 + k / fps`` on the wall clock (``time.monotonic()``); the thread sleeps to each due time (an
``Event`` wait: no spinning), takes a snapshot of the world's joint positions under ``world.lock`` (microseconds: the
physics thread and the pty server never wait for a render), and renders the snapshot outside the lock, every camera
from one renderer (one GL context, made by the thread). The capture time is the snapshot's. A due time already past
(the machine is loaded) is rendered at once; due times a whole period behind are dropped, not caught up, and
counted in ``skipped``. The thread runs at normal
priority: under load, frames are late before servo replies are (`onboard bench serve` measures the replies).
"""

from __future__ import annotations

import logging
import threading
import time

import mujoco

from hardware.shm_camera import ShmFrameWriter
from sim.twin.physics import World
from sim.twin.world import make_fast_renderer, render

log = logging.getLogger(__name__)


class CameraServer:
    """Publishes MuJoCo cameras of ``world`` (module doc). ``cameras``: published name -> the camera's name in the
    model. ``frames``: frames published per camera; ``skipped``: due times missed."""

    def __init__(self, world: World, cameras: dict[str, str], *, height: int = 96, width: int = 96, fps: float = 30.0):
        model = world.model
        known = [model.camera(i).name for i in range(model.ncam)]
        for published, camera in cameras.items():
            if camera not in known:
                raise ValueError(f"no camera {camera!r} in the model (for {published!r}); cameras: {known}")
        if not cameras:
            raise ValueError("no cameras to serve")
        if height <= 0 or width <= 0 or not fps > 0:
            raise ValueError(f"height, width and fps must be positive, got {height}x{width} @ {fps}")
        self.world = world
        self.cameras = dict(cameras)
        self.height, self.width, self.fps = int(height), int(width), float(fps)
        self.frames = 0
        self.skipped = 0
        self._ids = {published: model.camera(camera).id for published, camera in cameras.items()}
        self._writers: dict[str, ShmFrameWriter] = {}
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.cameras)

    def start(self) -> CameraServer:
        """Create the names (``CameraError`` if a living process serves one already), start the thread and wait
        until its first frames are published."""
        if self._thread is not None:
            raise RuntimeError("CameraServer already started")
        try:
            for published in self.cameras:
                self._writers[published] = ShmFrameWriter(
                    published, height=self.height, width=self.width, fps=self.fps
                ).open()
        except BaseException:
            self._close_writers()
            raise
        self._stop.clear()
        self._started.clear()
        self._thread = threading.Thread(target=self._run, name="CameraServer", daemon=True)
        self._thread.start()
        self._started.wait(30.0)
        if self._error is not None:
            self.stop()
        return self

    def stop(self) -> None:
        """Stop the thread and remove the names; re-raises what failed in the thread."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        self._close_writers()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("the camera server's thread failed") from error

    def __enter__(self) -> CameraServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _close_writers(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()

    def _run(self) -> None:
        world = self.world
        model = world.model
        renderer = None
        try:
            with world.lock:
                renderer = make_fast_renderer(model, self.height, self.width)
            snap = mujoco.MjData(model)
            period = 1.0 / self.fps
            t0 = time.monotonic()
            k = 0
            while True:
                with world.lock:  # a snapshot: the renders below do not hold up physics or the bus
                    snap.qpos[:] = world.data.qpos
                    snap.mocap_pos[:] = world.data.mocap_pos
                    snap.mocap_quat[:] = world.data.mocap_quat
                    snap.time = world.data.time
                    t = time.monotonic()
                mujoco.mj_kinematics(model, snap)
                mujoco.mj_camlight(model, snap)
                for published, cam_id in self._ids.items():
                    self._writers[published].write(render(renderer, snap, cam_id), t)
                self.frames += 1
                self._started.set()
                k += 1
                behind = int((time.monotonic() - t0) / period) - k  # due times already past
                if behind > 0:  # the next frame is late: render it at once, drop the ones a whole period behind
                    self.skipped += behind
                    k += behind
                if self._stop.wait(max(0.0, t0 + k * period - time.monotonic())):
                    break
        except BaseException as exc:
            log.error("camera server failed: %r", exc)
            self._error = exc
        finally:
            self._started.set()
            if renderer is not None:
                renderer.close()
