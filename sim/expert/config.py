"""The scripted expert's tunables: speeds, tolerances, gripper openings, heights and the grasp geometry."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExpertConfig:
    """Tunables of the scripted expert (heights are of the ``gripperframe`` tool point above the table, m)."""

    max_step_deg: float = 4.5  # no joint goal moves more than this per call (the real arm is rate limited)
    max_step_gripper: float = 4.0  # gripper units (0..100) per call
    joint_speed: float = 100.0  # deg/s, joint-space moves (the fastest joint)
    turn_speed: float = 60.0  # deg/s, turning the jaws to the cube's faces at the hover point
    line_speed: float = 0.12  # m/s, straight-line moves
    slow_speed: float = 0.06  # m/s, the last few cm onto or off a cube
    gripper_speed: float = 120.0  # units/s
    arrive_tol: float = 3.0  # deg: a move has arrived when every measured arm joint is this close to its goal
    move_timeout: float = 2.5  # s after a move's interpolation ends, go on even without arriving
    gripper_open: float = 40.0  # approach opening (moving pad ~25 mm beside a cube centred between the jaws)
    gripper_release: float = 30.0  # opening to let go inside the tray (clear of its walls)
    gripper_squeeze: float = 0.0  # closing goal: below a cube's width, so the jaws squeeze
    grasped_min: float = 6.0  # measured gripper above this after closing: something is between the jaws
    hold_margin: float = 6.0  # once grasped, hold with the goal this far below the measured jaw (no load reading)
    # Holding with a load reading (ExpertState.gripper_load): keep the squeeze between these fractions of the stall
    # torque. A servo squeezing above its Overload_Torque (LeRobot sets 25 % on the gripper) for its Protection_Time
    # (2 s) turns its torque off; a few percent of stall (~0.3 N*m, ~5 N at the pads) holds a 15 g cube easily.
    hold_load: tuple[float, float] = (0.05, 0.16)
    hold_gain: float = 1.0  # gripper units opened per unit of load above the window, per call
    # s from squeezing to holding before lifting: min, max. The lift starts 0.2 s after the jaw stopped, whatever the
    # load (it is regulated on during the lift): a policy sees the jaw stop but not the load, so a wait that ends
    # on the load reading (up to 1.2 s before) left it stuck holding the cube on the table.
    hold_settle: tuple[float, float] = (0.2, 0.2)
    jaw_still: float = 0.25  # gripper units: the jaw reading moved less than this over three calls
    touch_gripper: float = 4.0  # jaws nearly closed, not pressing on each other
    hover_z: float = 0.06
    grasp_z: float = 0.0065  # the tool point 6 mm below a cube's centre: the pads hold its lower half
    lift_z: float = 0.085  # cube bottom ~7.5 cm up
    carry_z: float = 0.085
    release_drop: float = 0.010  # cube bottom above the tray floor when letting go
    touch_press: float = 0.003  # how far the jaw tips aim below the cube's top (the descent stops at contact)
    touch_offset: tuple[float, float, float] = (0.002, 0.0, -0.016)  # closed jaw tips in the site frame
    lift_radius: tuple[float, float] = (0.15, 0.26)  # lift/carry points stay in this band around the pan axis
    jaw_reach: tuple[float, float] = (0.032, 0.045)  # fixed-jaw / open moving-jaw extent along the closing axis
    # m along the closing direction from the cube's centre to the tool point, which sits by the fixed jaw: -8 mm puts
    # the cube midway between the open pads (gaps ~12 mm on each side at gripper_open 40, instead of 3.6 mm to the
    # fixed pad and 20 mm to the moving one), so an aim a few mm off still lands the jaws beside the cube, not on it.
    grasp_shift: float = -0.008
    clearance: float = 0.008  # wanted gap between the jaws' sweep and other cubes or the tray

    def __post_init__(self) -> None:
        for name in (
            "max_step_deg",
            "max_step_gripper",
            "joint_speed",
            "turn_speed",
            "line_speed",
            "slow_speed",
            "gripper_speed",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ExpertConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("gripper_open", "gripper_release", "gripper_squeeze", "grasped_min"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"ExpertConfig.{name} is in gripper units, 0 (closed) .. 100 (open)")
        if self.gripper_squeeze >= self.grasped_min:
            raise ValueError("ExpertConfig.gripper_squeeze must be below grasped_min, or a miss reads as a grasp")
