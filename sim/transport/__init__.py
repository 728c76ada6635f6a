"""Transports that put an emulated ``SimBus`` behind a serial port.

- ``protocol_simbus``: the ``simbus://`` pyserial URL handler (in-process; ``import sim`` registers it).
- ``pty_server``: ``PtyBusServer``, the bus on a pseudo-terminal (``/dev/pts/N``) for drivers that open device paths
  (Feetech's SDK, LeRobot).

This package is on ``serial.protocol_handler_packages`` so it must stay cheap to import.
"""
