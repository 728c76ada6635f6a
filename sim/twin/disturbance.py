"""Random pushes on the simulated arm, for demonstrations that show recovery.

A policy trained only on a perfect expert's trajectories has never seen the arm a centimetre off them, so its own
small errors take it where it has no data (covariate shift). DART (Laskey et al., 2017, "DART: Noise Injection for
Robust Imitation Learning") injects noise into the executed motion while the demonstrator's labels stay clean. Here
each arm joint of the simulated follower is pushed off its goal by a slowly varying random angle
(Ornstein-Uhlenbeck; in the plant, ``JointPlant.disturbance``: the servo balances an external force, as if a person
jostled the arm). The leader's goals (the recorded actions) and the goal registers are untouched and the position
readings show where the arm really is, so the dataset holds states off the expert's path labelled with the way back.
The pushes fade out as the jaws come down to the table (``fade_z``): a push there presses the arm into the table
or a cube until the servo's overload protection trips, which ends a recording rather than teaching anything. A lower
floor (`onboard record --sim.disturbance_floor 0.015`) keeps them on through the last centimetres above a cube, where
a policy's aim has to be finest; recordings then fault more often (`scripts/make_model.sh` records the rest).
(A torque on the joints would not do: the STS3215's position loop is so stiff that anything below its stall torque
moves a joint by less than one encoder step.)

    dist = JointDisturbance(follower, std_deg=1.5, seed=3)   # SimulatedSO101; active from the next physics step
    ...
    dist.close()                                           # detach, the arm back on its goals
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sim.twin.world import GRIPPER_SITE, JOINT_NAMES

DISTURBANCE_FLOOR = 0.03  # m: the tool point's height at which the pushes have faded out (default)
DISTURBANCE_FADE = 0.03  # m: ... and how much higher they are at full strength
ARM_JOINTS = JOINT_NAMES[:5]  # not the gripper: a pushed jaw would only fight the grasp regulation


class JointDisturbance:
    """Ornstein-Uhlenbeck offsets (degrees) on ``joints`` of the simulated arm ``arm`` (a ``SimulatedSO101``):
    stationary standard deviation ``std_deg``, correlation time ``tau_s``; updated every ``update_s`` of simulated time
    and held in between (cheap: the hook runs every physics step). Deterministic for a ``seed``. The offsets are scaled
    from 1 with the tool point ``fade_z[1]`` m or more above the table down to 0 at ``fade_z[0]`` m."""

    def __init__(
        self,
        arm,
        *,
        std_deg: float,
        tau_s: float = 0.4,
        joints: Sequence[str] = ARM_JOINTS,
        update_s: float = 0.01,
        seed: int | None = 0,
        fade_z: tuple[float, float] = (DISTURBANCE_FLOOR, DISTURBANCE_FLOOR + DISTURBANCE_FADE),
    ):
        if not (math.isfinite(std_deg) and std_deg >= 0):
            raise ValueError(f"std_deg must be a finite angle >= 0 (degrees), got {std_deg}")
        if not (tau_s > 0 and update_s > 0):
            raise ValueError("tau_s and update_s must be positive (seconds)")
        unknown = [j for j in joints if j not in JOINT_NAMES]
        if unknown:
            raise ValueError(f"unknown joints {unknown}; the arm's are {list(JOINT_NAMES)}")
        self.world, self.std_deg, self.tau_s, self.update_s = arm.world, float(std_deg), float(tau_s), float(update_s)
        if not fade_z[0] < fade_z[1]:
            raise ValueError(f"fade_z must be (low, high) heights with low < high, got {fade_z}")
        self.fade_z = (float(fade_z[0]), float(fade_z[1]))
        self._plants = [arm.plants[j] for j in joints]
        self._site = self.world.data.site_xpos[self.world.model.site(GRIPPER_SITE).id]  # a view: updated in place
        self._rng = np.random.default_rng(seed)
        std = math.radians(self.std_deg)
        self._offset = self._rng.normal(0.0, std, len(self._plants))  # starts in the stationary distribution
        self._since = 0.0
        a = math.exp(-self.update_s / self.tau_s)
        self._decay, self._kick = a, std * math.sqrt(1.0 - a * a)  # exact OU discretisation
        self._attached = True
        self._apply()
        self.world.add_pre_step(self._step)

    @property
    def offsets_deg(self) -> np.ndarray:
        """The offsets applied now (degrees, one per joint)."""
        return np.degrees(self._offset)

    def scale(self) -> float:
        """How much of the offsets applies at the tool point's height now (0..1)."""
        lo, hi = self.fade_z
        return min(1.0, max(0.0, (float(self._site[2]) - lo) / (hi - lo)))

    def _apply(self) -> None:
        k = self.scale()
        for plant, off in zip(self._plants, self._offset):
            plant.disturbance = k * float(off)

    def _step(self, dt: float) -> None:
        self._since += dt
        if self._since >= self.update_s - 1e-12:
            self._since = 0.0
            self._offset = self._decay * self._offset + self._kick * self._rng.standard_normal(len(self._plants))
            self._apply()

    def close(self) -> None:
        """Detach: the hook is removed and the joints go back to their goals."""
        if not self._attached:
            return
        self._attached = False
        self.world.remove_pre_step(self._step)
        for plant in self._plants:
            plant.disturbance = 0.0
