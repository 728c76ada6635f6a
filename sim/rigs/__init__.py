"""Simulated rigs: the twin wired up as the hardware a command expects, built from plain keyword arguments. ``teleop``
is the rig for recording, teleoperation and replay (the follower twin with its cameras, an expert-driven simulated
leader on its own bus, and episode hooks that lay out a fresh scene); ``follower`` is the rig for running a policy
(the follower twin and its cameras, a scene for one task and the judge that says whether it was solved). Both keep
the servos' calibration in their EEPROM like a calibrated real arm, and run on the sim clock. ``base`` holds what
they share: ``SimRig``, a ``robot.rig.Rig`` whose typed fields name the twin (``SimTeleopRig`` adds the leader and
the scene hooks, ``SimFollowerRig`` the scene, its judge and the calibration it saved). The composition root
(``onboard.cli.rigs``) turns command-line flags into their keyword arguments.
"""
