"""What runs on the robot: arms, units, calibration, safety, the control loop, teleop, recording, and the `onboard`
CLI (the composition root, ``onboard/cli/__init__.py``, the only module here that may import sim/)."""
