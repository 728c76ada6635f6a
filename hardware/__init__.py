"""Device drivers: bytes <-> devices. Knows protocols and registers, never arms or policies.

Nothing here imports robot/, sim/ or policies/ (see DESIGN.md).
"""
