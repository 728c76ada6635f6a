"""A MuJoCo joint as the plant behind an emulated STS3215 (``sim.feetech.motor.Plant``).

The servo (``sim/feetech/servo.py``) keeps doing what it does with ``SimpleMotor``: registers, protocol, protections,
and a ``MotorCommand`` in the plant frame at each bus transaction. ``JointPlant`` does the rest where the physics is:

Frames. Plant-frame position (continuous encoder steps) = ``2048 + horn_offset_steps + direction * q * 4096 / 2pi``
with ``q`` the joint angle (rad). ``horn_offset_steps`` is where the horn sits on the output shaft: what the encoder
reads at q = 0, minus 2048 (a freshly assembled arm has arbitrary offsets; calibration writes homing offsets that
cancel them). ``direction`` is -1 for a servo mounted the other way round.

Firmware (a ``pre_step`` hook, before every physics step, 500 Hz). With torque on (mode 1) a reference point moves
toward ``cmd.target`` under a trapezoidal profile, limited by ``cmd.max_velocity`` (0 = the no-load speed, 3550
steps/s) and ``cmd.acceleration`` (0 = ``MAX_ACCELERATION``), as ``SimpleMotor`` does; the joint's position actuator
gets the reference angle as its control. The hook costs a few attribute reads once the reference has arrived.
``command()`` only hands the command over (one atomic assignment, no lock): the next physics step takes it up, in
the thread that steps the world, so a bus transaction never waits for the physics. Torque coming on starts the
profile where the horn is, also when torque went off and on again between two steps.

Gains. The XML's position actuator (kp 998.22 N*m/rad, kv 2.731 N*m*s/rad, force range +-2.94 N*m) is the SO-ARM100
project's DC-motor model of an STS3215 at P_Coefficient = 16 (hardware.md §4.2: kp = Km*Gp*(180/pi)/R with Gp = 16,
kv = Km*Kb/R). So:

- kp = 998.22 x P/16 (P = the P_Coefficient register; LeRobot writes 16, the factory value is 32);
- kv stays as in the XML whatever D_Coefficient says: Km*Kb/R is the motor's back-EMF damping through the driven
  H-bridge, a property of the motor, not of the firmware's D term (which is not modelled; nor is I);
- the force range is +-Torque_Limit x ``stall_torque`` (2.94 N*m = 30 kg*cm, the class value of the model): a
  blocked joint pushes with at most that torque. MuJoCo clamps the whole actuator force (kp term and kv term
  together), so a saturated servo runs at ~stall/joint damping = 4.9 rad/s, the no-load speed of the real one;
- the actuator's control range is lifted: a goal beyond a joint's stop pushes the joint into the stop, as the real
  servo does (and overloads), instead of being clipped to the joint range.

Torque off (mode 0): gains and damping 0, the joint is free with its own damping and friction (XML: 0.60 / 0.052 /
armature 0.028, the gear train). Damping mode (mode 2): only the kv term, scaled by Torque_Limit (the damping
strength register, hardware.md §2 addr 40).

Readings (``state()``): position and velocity in steps from ``qpos``/``qvel``; ``load`` = actuator force / stall
torque, signed in the servo's direction (what Present_Load reports, -1..1); ``current`` = |load| x 2 A (the
stall current of the spec: a quasi-static motor whose current is proportional to its torque; no-load current is
neglected). ``advance(t)`` is a no-op: the world steps itself (``sim.twin.physics.World``).
"""

from __future__ import annotations

import math

import mujoco

from sim.feetech.motor import (
    DAMPING,
    MAX_ACCELERATION,
    NO_LOAD_SPEED,
    POSITION,
    STALL_CURRENT,
    TORQUE_OFF,
    MotorCommand,
    PlantState,
)
from sim.twin.physics import World

STEPS_PER_RAD = 4096 / (2 * math.pi)
MODEL_P_COEFFICIENT = 16  # the P_Coefficient the XML's kp corresponds to (hardware.md §4.2)
STALL_TORQUE = 2.94  # N*m, the model's force range (30 kg*cm)


class JointPlant:
    """The ``Plant`` of one emulated servo: a MuJoCo hinge joint and its position actuator (module docstring)."""

    def __init__(
        self,
        world: World,
        joint_name: str,
        *,
        horn_offset_steps: float,
        direction: int = +1,
        stall_torque: float = STALL_TORQUE,
        no_load_speed: float = NO_LOAD_SPEED,
    ):
        if direction not in (1, -1):
            raise ValueError(f"direction must be +1 or -1, got {direction!r}")
        if stall_torque <= 0:
            raise ValueError(f"stall_torque must be positive, got {stall_torque!r}")
        model, data = world.model, world.data
        try:
            joint = model.joint(joint_name)
        except KeyError:
            names = [model.joint(i).name for i in range(model.njnt)]
            raise ValueError(f"no joint {joint_name!r} in the model; joints: {names}") from None
        actuators = [
            i
            for i in range(model.nu)
            if model.actuator_trntype[i] == mujoco.mjtTrn.mjTRN_JOINT and model.actuator_trnid[i, 0] == joint.id
        ]
        if not actuators:
            raise ValueError(f"joint {joint_name!r} has no actuator to drive it")
        a = actuators[0]
        if model.actuator_biastype[a] != mujoco.mjtBias.mjBIAS_AFFINE or model.actuator_gainprm[a, 0] <= 0:
            raise ValueError(f"actuator {model.actuator(a).name!r} of {joint_name!r} is not a position actuator")

        self.world = world
        self.joint_name = joint_name
        self.horn_offset_steps = float(horn_offset_steps)
        self.direction = direction
        self.stall_torque = float(stall_torque)
        self.no_load_speed = float(no_load_speed)
        self.actuator_id = a
        # rad added to the actuator's reference in position mode: the arm is pushed off the goal as if by an external
        # force the servo balances (sim.twin.disturbance sets it; the registers still show the goal that was written)
        self.disturbance = 0.0
        self.range = (float(model.jnt_range[joint.id, 0]), float(model.jnt_range[joint.id, 1]))  # rad
        self._qadr = int(model.jnt_qposadr[joint.id])
        self._dadr = int(model.jnt_dofadr[joint.id])
        self._offset = 2048.0 + self.horn_offset_steps
        self._scale = direction * STEPS_PER_RAD  # steps per rad, signed
        self._kp0 = float(model.actuator_gainprm[a, 0])
        self._kv0 = float(-model.actuator_biasprm[a, 2])
        # Views into the model and data (no copies): cheap element access in the per-step hook.
        self._gain = model.actuator_gainprm[a]
        self._bias = model.actuator_biasprm[a]
        self._forcerange = model.actuator_forcerange[a]
        self._qpos, self._qvel, self._ctrl, self._force = data.qpos, data.qvel, data.ctrl, data.actuator_force
        with world.lock:
            model.actuator_ctrllimited[a] = 0
            model.actuator_forcelimited[a] = 1
            self._cmd = MotorCommand(mode=TORQUE_OFF, target=self.position)
            self._taken: MotorCommand | None = None  # the command the firmware runs (taken up by pre_step)
            self._mode: int | None = None
            self._releases = 0  # commands without position control so far (counted by command())
            self._releases_seen = 0
            self._applied: tuple | None = None
            self._ref = self.position
            self._vref = 0.0
            self._moving = False
            self._ref_ctrl = self.angle
            self._take(self._cmd, 0)
            world.add_pre_step(self.pre_step)

    # --- frames -------------------------------------------------------------------------------------------------
    def angle_to_steps(self, q: float) -> float:
        """Plant-frame position (continuous steps) at joint angle ``q`` (rad)."""
        return self._offset + self._scale * q

    def steps_to_angle(self, steps: float) -> float:
        return (steps - self._offset) / self._scale

    @property
    def angle(self) -> float:
        """The joint angle (rad)."""
        return float(self._qpos[self._qadr])

    @property
    def position(self) -> float:
        """Plant-frame position (continuous steps) now."""
        return float(self._offset + self._scale * self._qpos[self._qadr])

    # --- Plant protocol -----------------------------------------------------------------------------------------
    def command(self, cmd: MotorCommand) -> None:
        # One reference assignment, atomic: the next physics step takes the command up (pre_step), in the thread
        # that steps the world. No lock, so a bus transaction never waits for the physics; with torque off the
        # servo sends a new command (target = where the horn is) at every transaction.
        if cmd.mode != POSITION:
            self._releases += 1  # so that torque off and on again between two physics steps still restarts the profile
        self._cmd = cmd

    def advance(self, t: float) -> None:
        """Nothing to do: the world steps itself."""

    def state(self) -> PlantState:
        # No lock: three float reads, each of them a value of the current or the previous physics step even while
        # another thread steps the world. Waiting for world.lock here, once per servo per bus transaction, made
        # replies to wall-time drivers late while a RealTimeRunner held the lock and waited for the GIL.
        q = self._qpos[self._qadr]
        qd = self._qvel[self._dadr]
        load = self.direction * self._force[self.actuator_id] / self.stall_torque
        return PlantState(
            position=float(self._offset + self._scale * q),
            velocity=float(self._scale * qd),
            load=float(load),
            current=abs(float(load)) * STALL_CURRENT,
        )

    # --- the firmware between bus packets ---------------------------------------------------------------------
    def pre_step(self, dt: float) -> None:
        """Take up a new command, move the reference one physics step along its profile and aim the actuator at it
        (world hook)."""
        releases = self._releases  # read before the command (command() counts before it hands the command over)
        cmd = self._cmd
        if cmd is not self._taken:
            self._take(cmd, releases)
        if not self._moving:
            if self._mode == POSITION:
                self._ctrl[self.actuator_id] = self._ref_ctrl + self.disturbance  # held, whatever reset data.ctrl
            return
        err = cmd.target - self._ref
        a = cmd.acceleration if cmd.acceleration > 0 else MAX_ACCELERATION
        vmax = cmd.max_velocity if 0 < cmd.max_velocity < self.no_load_speed else self.no_load_speed
        want = math.copysign(min(vmax, math.sqrt(2.0 * a * abs(err))), err)
        dv = want - self._vref
        limit = a * dt
        self._vref += limit if dv > limit else -limit if dv < -limit else dv
        step = self._vref * dt
        if step * err >= 0 and abs(step) >= abs(err):
            self._ref, self._vref = cmd.target, 0.0
            self._moving = False
        else:
            self._ref += step
        self._ref_ctrl = (self._ref - self._offset) / self._scale
        self._ctrl[self.actuator_id] = self._ref_ctrl + self.disturbance

    def _take(self, cmd: MotorCommand, releases: int) -> None:
        if cmd.mode == POSITION and (self._mode != POSITION or releases != self._releases_seen):
            self._ref, self._vref = self.position, 0.0  # the profile starts where the horn is
            self._ref_ctrl = float(self._qpos[self._qadr])
            self._ctrl[self.actuator_id] = self._ref_ctrl + self.disturbance
        self._releases_seen = releases
        self._mode = cmd.mode
        self._apply_gains(cmd)
        self._moving = cmd.mode == POSITION and (cmd.target != self._ref or self._vref != 0.0)
        self._taken = cmd

    def _apply_gains(self, cmd: MotorCommand) -> None:
        limit = min(1.0, max(0.0, cmd.torque_limit))
        key = (cmd.mode, cmd.kp, limit)
        if key == self._applied:
            return
        self._applied = key
        if cmd.mode == POSITION:
            kp, kv = self._kp0 * cmd.kp / MODEL_P_COEFFICIENT, self._kv0
        elif cmd.mode == DAMPING:
            kp, kv = 0.0, self._kv0 * limit
        else:
            kp, kv = 0.0, 0.0
        self._gain[0] = kp
        self._bias[1] = -kp
        self._bias[2] = -kv
        self._forcerange[0] = -limit * self.stall_torque
        self._forcerange[1] = limit * self.stall_torque

    def __repr__(self) -> str:
        return (
            f"JointPlant({self.joint_name!r}, horn_offset_steps={self.horn_offset_steps:.1f}, "
            f"direction={self.direction:+d}, mode={self._cmd.mode})"
        )
