"""`onboard demo` and `onboard sim show`: the servo bus against emulated servos (bus), the bundled model on an
instruction in the simulated twin (policy), a video of a scripted-expert episode (show)."""
