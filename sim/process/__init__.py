"""Emulators served by child processes, like real devices on a USB adapter: an emulated servo bus (``bus``) or a
whole simulated SO-101 running in real time (``so101``), each on a pseudo-terminal that any driver opens unmodified,
with a small JSON-lines control channel (``child``) for what tests and demos need from the simulation side. A child
process keeps the "device" answering while the driving process pauses (garbage collection, a busy-polling SDK holding
the GIL), as a real device would.
"""
