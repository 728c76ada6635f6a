"""What runs on the robot: arms, units, calibration, safety, the control loop, teleop, recording, and the `onboard`
CLI (the composition root, ``robot/cli.py``, the only module here that may import sim/)."""
