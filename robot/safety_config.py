"""``SafetyConfig``: the limits and thresholds of ``robot.safety.SafeArm`` (clamps, stall, temperature, watchdog, what
happens on exit), a frozen dataclass validated on construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from robot.errors import SafetyConfigError


# ----------------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SafetyConfig:
    """Limits and thresholds of ``SafeArm``. Joints in degrees, the gripper in its 0 (closed) .. 100 (open) units.

    Defaults are safe for an SO-101 driven at 30-50 Hz by teleop or a policy:

    - ``max_step_deg`` 10 / ``max_velocity_deg_s`` 180: an STS3215 turns at most ~240 deg/s unloaded; 180 deg/s
      keeps a wrong goal (a policy's jump, a leader arm's glitch) from slamming a joint, yet follows a person's hand.
      At 30 Hz the velocity limit binds (6 deg a tick); the step limit binds after a gap (the first goal after a
      hold, a stalled loop).
    - ``gripper_max_step`` 25 / ``gripper_max_velocity`` 250: a full close in 0.4 s.
    - ``gripper_torque_limit`` 0.5: LeRobot's fix for burnt grippers (PR#1809), applied in RAM at start;
      ``gripper_hold_torque`` 0.2 while a grasp is held (below the Overload_Torque of 25 % that ``Arm.configure``
      sets, so the servo's protection does not drop the object after 2 s).
    - stall: ``stall_load`` 0.7 of the joint's torque limit, ``stall_error_deg`` 2 (the servo's P term saturates
      within ~2 deg when blocked; for the gripper ``gripper_stall_load`` 0.4 of its limit, i.e. 20 %, below the 25 %
      Overload_Torque, and ``gripper_stall_error`` 0 units: the stiff position loop saturates with the goal less than
      one encoder step inside the object, so a goal that reads *on* the jaw can squeeze at full torque; a jaw that
      stays loaded without moving is a grasp whatever the error),
      the joint slower than ``stall_velocity_deg_s`` 10 (a stalled joint does not move;
      a fast move at full torque does), all for ``stall_time_s`` 0.5: well before the servo's own overload cut-out
      (80 % for 2 s), long enough to ignore the torque peak of a start.
    - ``temperature_warn_c`` 55 / ``temperature_stop_c`` 65: grippers holding objects reach 50 C in a minute and burn
      above 70 C (phosphobot#241); the servo's own limit is 70 C.
    - ``watchdog_timeout_s`` 0.1: three periods at 30 Hz. None turns the watchdog off.
    - ``on_exit`` "torque_off" (the arm goes limp: support it) or "hold" (torque stays on at the present position).
    """

    max_step_deg: float = 10.0
    max_velocity_deg_s: float = 180.0
    gripper_max_step: float = 25.0
    gripper_max_velocity: float = 250.0
    gripper_torque_limit: float = 0.5
    gripper_hold_torque: float = 0.2
    stall_load: float = 0.7
    stall_error_deg: float = 2.0
    gripper_stall_error: float = 0.0  # units; 0: a loaded, still jaw is a grasp at any goal error
    gripper_stall_load: float = 0.4  # of the gripper's torque limit: 0.4 x 0.5 = 20 %, below the 25 % Overload_Torque
    gripper_release_margin: float = 1.0  # a derated grasp ends when the goal is this far on the open side of the jaw
    stall_time_s: float = 0.5
    stall_velocity_deg_s: float = 10.0
    gripper_on_stall: Literal["derate", "stop"] = "derate"
    temperature_warn_c: float = 55.0
    temperature_stop_c: float = 65.0
    watchdog_timeout_s: float | None = 0.1
    on_exit: Literal["torque_off", "hold"] = "torque_off"

    def __post_init__(self) -> None:
        positive = (
            "max_step_deg",
            "max_velocity_deg_s",
            "gripper_max_step",
            "gripper_max_velocity",
            "stall_error_deg",
            "gripper_stall_load",
            "gripper_release_margin",
            "stall_time_s",
            "stall_velocity_deg_s",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise SafetyConfigError(f"safety.{name} must be a positive number, got {value!r}")
            object.__setattr__(self, name, float(value))
        value = self.gripper_stall_error
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise SafetyConfigError(f"safety.gripper_stall_error must be a number >= 0 (gripper units), got {value!r}")
        object.__setattr__(self, "gripper_stall_error", float(value))
        for name in ("gripper_torque_limit", "gripper_hold_torque", "stall_load", "gripper_stall_load"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise SafetyConfigError(
                    f"safety.{name} is a fraction of full torque in (0, 1] (0.5 = 50 %), got {value!r}"
                )
            object.__setattr__(self, name, float(value))
        for name in ("temperature_warn_c", "temperature_stop_c"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
                raise SafetyConfigError(f"safety.{name} must be in degrees C within (0, 100], got {value!r}")
        if self.gripper_hold_torque > self.gripper_torque_limit:
            raise SafetyConfigError(
                f"safety.gripper_hold_torque ({self.gripper_hold_torque}) is the derated torque of a held grasp: "
                f"it must not be above safety.gripper_torque_limit ({self.gripper_torque_limit})"
            )
        if self.temperature_warn_c > self.temperature_stop_c:
            raise SafetyConfigError(
                f"safety.temperature_warn_c ({self.temperature_warn_c}) must not be above safety.temperature_stop_c "
                f"({self.temperature_stop_c}): the warning comes first"
            )
        wd = self.watchdog_timeout_s
        if wd is not None and (isinstance(wd, bool) or not isinstance(wd, int | float) or not wd > 0):
            raise SafetyConfigError(
                f"safety.watchdog_timeout_s must be a positive number of seconds (a few control periods) or None "
                f"to turn the watchdog off, got {wd!r}"
            )
        if self.gripper_on_stall not in ("derate", "stop"):
            raise SafetyConfigError(
                f"safety.gripper_on_stall must be 'derate' or 'stop', got {self.gripper_on_stall!r}"
            )
        if self.on_exit not in ("torque_off", "hold"):
            raise SafetyConfigError(f"safety.on_exit must be 'torque_off' or 'hold', got {self.on_exit!r}")
