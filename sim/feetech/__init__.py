"""Emulated Feetech STS3215 servos on an emulated bus, byte-faithful to the real protocol (hardware.md §1-3).

- ``EmulatedServo`` (servo.py): one servo: register memory, EEPROM flash + Lock, instruction semantics; its
  readings, controller and protections are ``ServoControl`` (control.py); register addresses and the factory image
  are in memory.py.
- ``Plant``/``SimpleMotor`` (motor.py): what moves behind the servo; MuJoCo joints plug in here.
- ``SimBus`` (bus.py): servos on one wire: broadcast and sync instructions, baud matching, wire-time model.
- ``FaultProfile`` (faults.py): dropped/corrupted/late replies, unplugged servos, overload, low voltage.

Transports that put a ``SimBus`` behind a serial port live in ``sim.transport``.
"""

from sim.feetech.bus import Reply, SimBus, get_bus, register_bus, unregister_bus
from sim.feetech.faults import LOW_VOLTAGE_V, FaultProfile
from sim.feetech.motor import MotorCommand, Plant, PlantState, SimpleMotor
from sim.feetech.servo import EmulatedServo

__all__ = [
    "LOW_VOLTAGE_V",
    "EmulatedServo",
    "FaultProfile",
    "MotorCommand",
    "Plant",
    "PlantState",
    "Reply",
    "SimBus",
    "SimpleMotor",
    "get_bus",
    "register_bus",
    "unregister_bus",
]
