"""The MuJoCo world that emulated devices live in, and the two ways its time moves (DESIGN.md, seam 3).

- ``World``: owns ``model``/``data`` of an SO-101 scene (500 Hz physics from the XML) and the only way to advance
  them: ``step_until(t)``, which runs every ``pre_step`` hook (servo plants set their actuators there) before every
  ``mj_step`` and every ``post_step`` hook (the scripted hand pins the joints it holds) after it. ``world.lock`` (an
  ``RLock``) is held while stepping, rendering or moving joints by hand. Bus transactions do not take it: a servo
  reads its joint's position, velocity and force without it (each a value of the current or the last step) and
  hands its commands over with one atomic assignment that the next step takes up (``sim.twin.joint_plant``).
- ``SimClock(world)``: robot's ``Clock`` on simulated time. ``now()`` is the world's time; ``sleep_until(t)`` steps
  the world to ``t`` instead of waiting, so a control loop runs deterministically and as fast as the CPU allows.
- ``RealTimeRunner(world)``: keeps the world at wall-clock pace (a thread stepping in small batches and sleeping
  between, or ``poll()`` from an event loop), for third-party drivers that talk to the simulated arm over a
  pseudo-terminal and wait in wall time.

Use one of the two at a time for a world: a ``SimClock`` stepping a world that a runner also steps would run it faster
than real time.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported (see sim/twin/world.py)

import threading
import time
from collections.abc import Callable

import mujoco
import numpy as np

from sim.realtime import raise_thread_priority
from sim.twin import world as _world

PreStepHook = Callable[[float], None]


class World:
    """A MuJoCo SO-101 scene and its time (see the module docstring).

    ``scene``: the asset under ``sim/assets/so101`` (``"scene"``: the arm on a table with cubes and cameras,
    ``"so101"``: the arm alone). The world starts in the ``home`` keyframe (the calibration pose). ``seed`` seeds
    ``world.rng`` (a ``numpy.random.Generator``) for whatever builds on the world (task layouts, randomisation); the
    physics itself is deterministic and uses no randomness.
    """

    def __init__(self, scene: str = "scene", *, seed: int | None = None):
        self.scene = scene
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.model: mujoco.MjModel = _world.load_model(scene)
        self.data: mujoco.MjData = mujoco.MjData(self.model)
        self.lock = threading.RLock()
        self._hooks: tuple[PreStepHook, ...] = ()
        self._post_hooks: tuple[PreStepHook, ...] = ()
        self.reset(keep_controls=False)

    # --- state --------------------------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Simulated seconds since the world was built (``data.time``)."""
        return self.data.time

    @property
    def timestep(self) -> float:
        return self.model.opt.timestep

    def reset(self, keyframe: str | None = "home", *, keep_controls: bool = True) -> None:
        """Back to ``keyframe`` (or MuJoCo's default state with None). Time does not go back: it is the clock of
        everything living in the world (servo timers, camera frames, the control loop), one monotonic time base.
        The actuator controls stay as they are (unless ``keep_controls`` is False): they belong to the servos
        (``JointPlant``), which keep their goals, so a servo with torque on pulls its joint back to its goal, as a
        real one would. Hooks stay registered; the
        new state is what the next bus transaction reads."""
        with self.lock:
            t, ctrl = self.data.time, self.data.ctrl.copy()
            if keyframe is not None and keyframe in {self.model.key(i).name for i in range(self.model.nkey)}:
                mujoco.mj_resetDataKeyframe(self.model, self.data, self.model.key(keyframe).id)
            else:
                mujoco.mj_resetData(self.model, self.data)
            if keep_controls:
                self.data.ctrl[:] = ctrl
            self.data.time = t
            mujoco.mj_forward(self.model, self.data)

    # --- hooks --------------------------------------------------------------------------------------------------
    def add_pre_step(self, hook: PreStepHook) -> PreStepHook:
        """Call ``hook(timestep)`` before every physics step (under ``world.lock``). Keep it cheap: it runs 500 times
        per simulated second. Returns the hook (usable as a decorator)."""
        with self.lock:
            self._hooks = (*self._hooks, hook)
        return hook

    def remove_pre_step(self, hook: PreStepHook) -> None:
        with self.lock:
            hooks = list(self._hooks)
            hooks.remove(hook)
            self._hooks = tuple(hooks)

    def add_post_step(self, hook: PreStepHook) -> PreStepHook:
        """Call ``hook(timestep)`` after every physics step (under ``world.lock``): for what must hold exactly
        between steps (a kinematically held joint). Same cost rules as ``add_pre_step``."""
        with self.lock:
            self._post_hooks = (*self._post_hooks, hook)
        return hook

    def remove_post_step(self, hook: PreStepHook) -> None:
        with self.lock:
            hooks = list(self._post_hooks)
            hooks.remove(hook)
            self._post_hooks = tuple(hooks)

    # --- time ---------------------------------------------------------------------------------------------------
    def step(self, n: int = 1) -> None:
        """Run ``n`` physics steps (hooks before each)."""
        with self.lock:
            m, d, hooks, post, dt = self.model, self.data, self._hooks, self._post_hooks, self.model.opt.timestep
            step = mujoco.mj_step
            for _ in range(n):
                for hook in hooks:
                    hook(dt)
                step(m, d)
                for hook in post:
                    hook(dt)

    def step_until(self, t: float) -> int:
        """Step while ``time + timestep/2 <= t``: the world ends on the physics step nearest to ``t`` (within half a
        step, 1 ms at 500 Hz, before or after it). Returns the number of steps taken (0 if ``t`` has passed)."""
        with self.lock:
            m, d, hooks, post = self.model, self.data, self._hooks, self._post_hooks
            half = 0.5 * m.opt.timestep
            dt = m.opt.timestep
            step = mujoco.mj_step
            n = 0
            while d.time + half <= t:
                for hook in hooks:
                    hook(dt)
                step(m, d)
                for hook in post:
                    hook(dt)
                n += 1
            return n

    def forward_kinematics(self) -> None:
        """Recompute body, geom, site and camera poses from ``qpos`` (what a renderer or a test looks at) without
        touching the dynamics: ``mj_step`` leaves them one step behind ``qpos``."""
        with self.lock:
            mujoco.mj_kinematics(self.model, self.data)
            mujoco.mj_camlight(self.model, self.data)


class SimClock:
    """robot's ``Clock`` on the world's time: ``sleep_until(t)`` steps the world instead of waiting.

    It returns on the physics step nearest ``t`` (``World.step_until``), so ``now()`` may be up to half a step
    (1 ms) short of ``t``; compare times with that tolerance, or schedule on multiples of the 2 ms step.
    """

    def __init__(self, world: World):
        self.world = world

    def now(self) -> float:
        return self.world.data.time

    def sleep_until(self, t: float) -> None:
        self.world.step_until(t)

    def sleep(self, seconds: float) -> None:
        """Relative convenience for tests and scripts (control loops use absolute deadlines)."""
        self.world.step_until(self.world.data.time + seconds)


class RealTimeRunner:
    """Keeps ``world`` at wall-clock pace (times ``rate``), for drivers that wait in wall time.

    As a thread: ``start()``/``stop()`` or ``with RealTimeRunner(world):``. Every ``batch_s`` of wall time the thread
    steps the world up to where the wall clock says it should be, holding ``world.lock`` for one batch at a time so
    that bus transactions and renders get in between. Or without a thread: call ``poll()`` from your own event loop
    (it steps the world to now and says how long until the next step is due), as ``sim.process.so101`` does to serve
    the arm from one thread. If the CPU cannot keep up (more than ``max_lag_s`` behind), the lost time is dropped
    instead of raced through, and counted in ``dropped_s``. ``realtime=True`` runs the thread ahead of ordinary
    threads and processes where permitted (``sim.realtime``): a server thread that waits for ``world.lock`` then never
    waits for a holder that the host preempted (`onboard sim serve` runs both so).
    """

    def __init__(
        self, world: World, *, rate: float = 1.0, batch_s: float = 0.002, max_lag_s: float = 0.1, realtime: bool = False
    ):
        if rate <= 0 or batch_s <= 0 or max_lag_s <= 0:
            raise ValueError("rate, batch_s and max_lag_s must be positive")
        self.world = world
        self.rate = float(rate)
        self.batch_s = float(batch_s)
        self.max_lag_s = float(max_lag_s)
        self.realtime = realtime
        self.priority = "normal"  # what the thread got (sim.realtime.raise_thread_priority) when ``realtime``
        self.thread_id: int | None = None  # the thread's native (kernel) id, once started
        self.dropped_s = 0.0  # simulated time skipped because stepping fell behind the wall clock
        self.steps = 0
        self._base: tuple[float, float] | None = None  # (wall, sim) times that correspond
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def poll(self) -> float:
        """Step the world to where the wall clock says it should be (the first call only sets the time base);
        returns the seconds until the next step is due."""
        world, rate = self.world, self.rate
        now = time.monotonic()
        if self._base is None:
            self._base = (now, world.time)
        wall0, sim0 = self._base
        target = sim0 + (now - wall0) * rate
        behind = target - world.time
        if behind > self.max_lag_s:
            self.dropped_s += behind
            self._base = wall0, sim0 = now, world.time
            target = sim0
        # one batch at a time, so that nobody waits for the lock longer than a batch of physics
        chunk = max(self.batch_s * rate, world.timestep)
        t = world.time
        while t + 0.5 * world.timestep <= target:
            self.steps += world.step_until(min(target, t + chunk))
            t = world.time
        return max(0.0, wall0 + (t + world.timestep - sim0) / rate - time.monotonic())

    def start(self) -> RealTimeRunner:
        if self._thread is not None:
            raise RuntimeError("RealTimeRunner already started")
        self._stop.clear()
        self._error = None
        self._base = None
        self._thread = threading.Thread(target=self._run, name="RealTimeRunner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop stepping and join the thread; re-raises an exception a pre-step hook raised in the thread."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join()
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError("the real-time simulation thread failed") from error

    def __enter__(self) -> RealTimeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        if self.realtime:
            self.priority = raise_thread_priority()
        self.thread_id = threading.get_native_id()  # set last: once it is, ``priority`` is final
        stop = self._stop
        batch = self.batch_s
        try:
            while not stop.is_set():
                due = self.poll()
                stop.wait(max(due, batch))
        except BaseException as exc:  # handed to the thread that calls stop()
            self._error = exc
