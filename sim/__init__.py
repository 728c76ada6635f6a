"""The mirror: emulated devices, the MuJoCo twin they live in, tasks, the scripted expert, simulated rigs and the
gymnasium environments built from them.

Importing ``sim`` registers the ``simbus://`` pyserial URL handler (``sim.transport.protocol_simbus``) by appending
``"sim.transport"`` to ``serial.protocol_handler_packages``, so that ``serial.serial_for_url("simbus://?ids=1-6")``
opens an in-process emulated servo bus. It also defaults ``MUJOCO_GL`` to ``egl`` (headless offscreen rendering on
the CPU) unless already set, because MuJoCo reads it once, at its first import, wherever that happens. Nothing else
happens on import.
"""

import os as _os

import serial as _serial

_os.environ.setdefault("MUJOCO_GL", "egl")

if "sim.transport" not in _serial.protocol_handler_packages:
    _serial.protocol_handler_packages.append("sim.transport")
