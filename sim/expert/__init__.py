"""The scripted expert: a privileged-state controller that solves the tasks of ``sim.tasks`` (touch, pick, place) and
emits the same action a policy does, float32[6] joint goals in LeRobot's SO-101 units at the control rate. It
produces the demonstrations policies learn from, the ``expert`` policy of ``onboard eval``, and the leader arm a
simulated teleoperation follows. By concern: ``ik`` (damped-least-squares inverse kinematics of the arm), ``state``
(what it reads: measured joints, true cube and tray poses), ``config`` (its tunables), ``motion`` (running a script at
the control rate, the regulated grip, the motion primitives), ``script`` (``ScriptedExpert``: grasp planning and one
script per task), and ``harness`` (executors and ``run_episode``: the expert run on actuators, degraded actuators or
the full mirrored stack). The expert's own names are re-exported here; import the harness from ``sim.expert.harness``
(it loads the gymnasium environment).
"""

from sim.expert.config import ExpertConfig
from sim.expert.ik import ARM, ArmIK
from sim.expert.script import ScriptedExpert
from sim.expert.state import ExpertState, cube_face_yaw

__all__ = ["ARM", "ArmIK", "ExpertConfig", "ExpertState", "ScriptedExpert", "cube_face_yaw"]
