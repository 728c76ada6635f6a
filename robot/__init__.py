"""The runtime library on the robot: arms, units, calibration, safety, the control loop, teleop, recording, replay,
running a policy and the live view. Imports hardware/ and policies/; never sim/ or onboard/."""
