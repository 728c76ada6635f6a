"""The plant behind an emulated servo: what the motor, the gears and the joint do with the servo's command.

This module is the seam between the servo's electronics (``servo.py``: registers, protocol, protections) and the
physics. The servo turns its registers into a ``MotorCommand`` in the *plant frame* (continuous encoder steps, not
wrapped, no homing offset), and reads back a ``PlantState``. ``SimpleMotor`` is a small first-principles model good
enough for bus-level tests; a MuJoCo joint (``sim.twin.joint_plant``) implements the same ``Plant`` protocol, with
``advance`` a no-op because the world steps itself.

``SimpleMotor`` in one paragraph: a trapezoidal profile (``max_velocity``, ``acceleration``) moves a reference point
toward the target; a proportional controller turns the tracking error into a PWM duty ``u`` (``kp`` x 0.001 per step,
clipped to ``torque_limit``); the geared DC motor is quasi-static (no inertia at the servo's time scale): it turns at
``v = w0 * (u + external_torque -/+ friction)`` with ``w0`` set so that full duty gives the no-load speed (~52 rpm,
3550 steps/s at 7.4 V). A load it cannot overcome (``external_torque`` beyond ``torque_limit``) stalls it short of the
target and, past the gears' friction, back-drives it: the motor yields at its torque limit. Torque off: the gears'
friction holds it unless ``external_torque`` (or ``move_to``, a hand moving the horn) moves it. ``load`` is the
signed duty (what Present_Load reports, and in a stall the fraction of stall torque used); ``current`` is the torque
actually produced times the stall current (2 A).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

TORQUE_OFF, POSITION, DAMPING = 0, 1, 2

NO_LOAD_SPEED = 3550.0  # steps/s: ~52 rpm at 7.4 V (4096 steps per turn)
MAX_ACCELERATION = 100_000.0  # steps/s^2, used when the Acceleration register is 0 ("maximum")
STALL_CURRENT = 2.0  # A at stall (Feetech spec, 6 V)
FRICTION = 0.01  # gear-train static friction, fraction of stall torque
KP_SCALE = 0.001  # duty per step of error per unit of P_Coefficient (kp 32: full duty at ~31 steps of error)
DAMPING_FACTOR = 4.0  # torque-off "damping" mode (shorted windings): back-driving is this much slower
MAX_SUBSTEP = 1e-3  # s


@dataclass
class MotorCommand:
    """What the servo's controller asks of the plant (plant frame: continuous actual encoder steps)."""

    mode: int = TORQUE_OFF  # 0 torque off (free), 1 position hold, 2 damping
    target: float = 0.0  # steps, plant frame
    max_velocity: float = 0.0  # steps/s; 0 = the motor's maximum
    acceleration: float = 0.0  # steps/s^2; 0 = maximum
    torque_limit: float = 1.0  # 0..1 fraction of stall torque (PWM duty limit)
    kp: int = 32  # register values (P/I/D_Coefficient)
    ki: int = 0
    kd: int = 32


@dataclass
class PlantState:
    position: float  # steps, continuous (NOT wrapped)
    velocity: float  # steps/s
    load: float  # -1..1, signed fraction of stall torque / PWM duty
    current: float  # A


@runtime_checkable
class Plant(Protocol):
    def command(self, cmd: MotorCommand) -> None:
        """Take a new command (it holds until the next one)."""

    def advance(self, t: float) -> None:
        """Bring the plant to absolute time ``t`` (seconds). The first call only sets the time base."""

    def state(self) -> PlantState:
        """The state at the time of the last ``advance``."""


class SimpleMotor:
    """A geared DC motor under a P position controller with a trapezoidal profile (see the module docstring)."""

    def __init__(self, position: float = 2048.0, *, no_load_speed: float = NO_LOAD_SPEED):
        self.position = float(position)
        self.velocity = 0.0
        self.external_torque = 0.0  # fraction of stall torque pushing the output (+ = toward increasing steps)
        self.no_load_speed = float(no_load_speed)
        self._omega = self.no_load_speed / (1.0 - FRICTION)  # so that full duty with no load gives no_load_speed
        self._cmd = MotorCommand(target=self.position)
        self._ref = self.position  # profile reference point
        self._vref = 0.0
        self._u = 0.0  # duty of the last substep
        self._t: float | None = None

    # --- Plant protocol -------------------------------------------------------------------------------------------
    def command(self, cmd: MotorCommand) -> None:
        if cmd.mode == POSITION and self._cmd.mode != POSITION:
            self._ref, self._vref = self.position, 0.0  # the profile starts where the horn is
        self._cmd = cmd

    def advance(self, t: float) -> None:
        if self._t is None or t <= self._t:
            if self._t is None:
                self._t = t
            return
        total = t - self._t
        n = max(1, math.ceil(total / MAX_SUBSTEP - 1e-9))
        h = total / n
        for i in range(n):
            before = self.position
            self._step(h)
            if self._steady(self.position == before):
                remaining = total - (i + 1) * h
                self.position += self.velocity * remaining  # velocity is constant (often 0) from here on
                break
        self._t = t

    def state(self) -> PlantState:
        torque = (
            self._u - self.velocity / self._omega
        )  # what the motor actually produces (DC motor: stall x (u - w/w0))
        return PlantState(self.position, self.velocity, self._u, abs(torque) * STALL_CURRENT)

    # --- test and fault helpers -----------------------------------------------------------------------------------
    def move_to(self, position: float) -> None:
        """Move the horn by hand (teleport): with torque on the controller will pull it back toward the target."""
        self.position = float(position)
        self.velocity = 0.0
        if self._cmd.mode != POSITION:
            self._ref, self._vref = self.position, 0.0

    # --- model ----------------------------------------------------------------------------------------------------
    def _step(self, h: float) -> None:
        cmd = self._cmd
        if cmd.mode == POSITION:
            self._profile(h, cmd)
            limit = max(0.0, min(1.0, cmd.torque_limit))
            u = cmd.kp * KP_SCALE * (self._ref - self.position)
            u = limit if u > limit else -limit if u < -limit else u
        else:
            self._ref, self._vref = self.position, 0.0
            u = 0.0
        drive = u + self.external_torque
        if -FRICTION <= drive <= FRICTION:
            v = 0.0
        else:
            v = self._omega * (drive - math.copysign(FRICTION, drive))
            if cmd.mode == DAMPING:
                v /= 1.0 + DAMPING_FACTOR
        self._u = u
        self.velocity = v
        self.position += v * h

    def _profile(self, h: float, cmd: MotorCommand) -> None:
        err = cmd.target - self._ref
        if err == 0.0 and self._vref == 0.0:
            return
        a = cmd.acceleration if cmd.acceleration > 0 else MAX_ACCELERATION
        vmax = cmd.max_velocity if cmd.max_velocity > 0 else self.no_load_speed
        vmax = min(vmax, self.no_load_speed)
        want = math.copysign(min(vmax, math.sqrt(2.0 * a * abs(err))), err)
        dv = want - self._vref
        dv = max(-a * h, min(a * h, dv))
        self._vref += dv
        step = self._vref * h
        if step * err >= 0 and abs(step) >= abs(err):
            self._ref, self._vref = cmd.target, 0.0
        else:
            self._ref += step

    def _steady(self, unmoved: bool) -> bool:
        """True when every further substep would repeat this one (constant velocity): skip to the end."""
        cmd = self._cmd
        if cmd.mode != POSITION:
            return True  # u = 0 and external_torque is constant during an advance
        if self._vref != 0.0 or self._ref != cmd.target:
            return False
        if self.velocity == 0.0 or unmoved:
            return True  # held (friction band, or a creep below float resolution): nothing changes any more
        if cmd.kp == 0:
            return True
        limit = max(0.0, min(1.0, cmd.torque_limit))
        err = self._ref - self.position
        # saturated and pushed away from the target: the error only grows, the duty stays at the limit
        return abs(cmd.kp * KP_SCALE * err) >= limit and self.velocity * err < 0
