"""The mirror: emulated devices (and, in time, the MuJoCo world and gymnasium environments built from them).

Importing ``sim`` registers the ``simbus://`` pyserial URL handler (``sim.transport.protocol_simbus``) by appending
``"sim.transport"`` to ``serial.protocol_handler_packages``, so that ``serial.serial_for_url("simbus://?ids=1-6")``
opens an in-process emulated servo bus. Nothing else happens on import.
"""

import serial as _serial

if "sim.transport" not in _serial.protocol_handler_packages:
    _serial.protocol_handler_packages.append("sim.transport")
