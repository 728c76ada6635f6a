"""Rendered cameras: robot's ``Camera`` on a MuJoCo camera of a ``World`` (DESIGN.md, seam 2).

A real camera captures frames at its own rate whether anyone reads them or not; a rendered one only needs to render
the frames somebody reads. So ``read_latest`` renders lazily: frame k is due at ``k / fps`` on the sim clock, and a
read at a time when a frame newer than the last rendered one is due renders it then. ``t_capture`` is the sim time of
the render; ``index`` counts frame periods since ``connect()``. Between due times a read returns the same frame (and
the same array), so a 30 Hz camera read by a 50 Hz loop shows its age as a real one does, and ``max_age_s`` below
one frame period raises ``StaleFrameError`` between frames. A frame counts as due from half a physics step (1 ms)
before its due time: a control loop's tick lands on the physics step nearest its deadline, which may be that much
early, and a 30 Hz loop on a 30 fps camera gets a new frame every tick (not 2 in 3).

Rendering is offscreen on the CPU (EGL by default), with shadows, reflections and multisampling off
(``sim.twin.world.make_fast_renderer``/``render``; see shared/reference/measured-here.md). Renderers are not thread-safe
and their GL context belongs to the thread that made it: create, read and disconnect a camera on one thread, and
render one world from one thread (a ``RealTimeRunner`` stepping the world in another thread is fine: renders take
``world.lock``).
"""

from __future__ import annotations

import math

import mujoco

from hardware.camera import CameraError, Frame, StaleFrameError
from robot.clock import Clock
from sim.twin.physics import World
from sim.twin.world import make_fast_renderer, render


class RenderedCamera:
    """A MuJoCo camera of ``world`` as robot's ``Camera`` (see the module docstring).

    ``camera``: the camera's name in the model (``"front"`` and ``"wrist"`` in the SO-101 scene). ``name``: the
    camera's key in observations (default: ``camera``). ``clock``: the time base of due times and ``t_capture``
    (default: the world's time, which is what ``SimClock.now()`` reads).
    """

    def __init__(
        self,
        world: World,
        camera: str,
        *,
        name: str | None = None,
        height: int = 96,
        width: int = 96,
        fps: float = 30.0,
        clock: Clock | None = None,
    ):
        model = world.model
        cameras = [model.camera(i).name for i in range(model.ncam)]
        if camera not in cameras:
            raise ValueError(f"no camera {camera!r} in the model; cameras: {cameras}")
        if height <= 0 or width <= 0:
            raise ValueError(f"height and width must be positive, got {height}x{width}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.world = world
        self.camera = camera
        self.name = name or camera
        self.height = int(height)
        self.width = int(width)
        self.fps = float(fps)
        self._clock = clock
        self._camera_id = model.camera(camera).id
        self._tolerance = 0.5 * world.timestep
        self._renderer: mujoco.Renderer | None = None
        self._latest: Frame | None = None
        self._slot = -1  # the due slot (k) of the latest frame
        self._slot0 = 0  # the slot at connect()
        self.frames_rendered = 0

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return (
            f"RenderedCamera({self.name!r}, camera={self.camera!r}, {self.width}x{self.height}@{self.fps:g}, {state})"
        )

    @property
    def is_connected(self) -> bool:
        return self._renderer is not None

    def _now(self) -> float:
        return self._clock.now() if self._clock is not None else self.world.data.time

    def _slot_at(self, t: float) -> int:
        # within half a physics step of a due time counts as at it: a loop's tick lands on the step nearest its
        # deadline, up to half a step early, and must still get the frame due then
        return math.floor((t + self._tolerance) * self.fps + 1e-9)

    def connect(self) -> None:
        """Create the offscreen renderer (a GL context, on this thread)."""
        if self._renderer is not None:
            return
        with self.world.lock:
            self._renderer = make_fast_renderer(self.world.model, self.height, self.width)
        self._latest = None
        self._slot0 = self._slot_at(self._now())
        self._slot = self._slot0 - 1

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame (rendered now if one is due); ``StaleFrameError`` if older than ``max_age_s``."""
        renderer = self._renderer
        if renderer is None:
            raise CameraError(f"camera {self.name!r} is not connected: call connect() first")
        now = self._now()
        latest = self._latest
        if latest is None or self._slot_at(now) > self._slot or now < latest.t_capture:
            world = self.world
            with world.lock:
                world.forward_kinematics()  # poses of the current qpos (mj_step leaves them one step behind)
                rgb = render(renderer, world.data, self._camera_id)
                t = self._now()
            slot = self._slot_at(t)
            latest = self._latest = Frame(rgb=rgb, t_capture=t, index=slot - self._slot0)
            self._slot = slot
            self.frames_rendered += 1
        if max_age_s is not None:
            age = now - latest.t_capture
            if age > max_age_s:
                raise StaleFrameError(
                    f"camera {self.name!r}: the latest frame is {age * 1e3:.1f} ms old (captured at "
                    f"{latest.t_capture:.4f} s, now {now:.4f} s), more than max_age_s = {max_age_s * 1e3:.1f} ms; "
                    f"the camera renders at {self.fps:g} fps"
                )
        return latest

    def disconnect(self) -> None:
        """Free the renderer and its GL context."""
        renderer, self._renderer = self._renderer, None
        self._latest = None
        if renderer is not None:
            renderer.close()

    def __enter__(self) -> RenderedCamera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
