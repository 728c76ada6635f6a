"""`onboard demo` and `onboard sim show`: the servo bus against emulated servos (bus), the bundled model on an
instruction in the simulated twin (policy), a video of a scripted-expert episode (show)."""

DEFAULT_INSTRUCTION = "pick up the red cube"  # `onboard demo` without an instruction
DEFAULT_VIDEO = "outputs/demo.mp4"  # where `onboard demo` writes the episode's video
