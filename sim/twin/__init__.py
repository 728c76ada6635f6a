"""The simulated twin of an SO-101: a MuJoCo world (``world``, ``physics``) whose joints are the plants behind
emulated STS3215 servos (``joint_plant``), assembled into a follower arm that speaks the real bus protocol
(``so101``), with rendered cameras (``cameras``) and the actors around the arm: a simulated leader moved by the
scripted expert (``leader``), a scripted person for calibration (``person``) and random pushes for demonstrations
that show recovery (``disturbance``). Drivers, the control loop and the recorder use it exactly as they use the real
arm: through a serial port and the camera seam, on the sim clock.
"""
