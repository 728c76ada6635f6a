"""The register memory of an emulated STS3215, as data the servo and its controller share: the address of every
register by name (``A_*``, from ``hardware.feetech.tables``, so the emulator cannot disagree with the driver), the
factory image, which cells a WRITE may change, and the 16-bit and sign-magnitude accessors the servo's fields use."""

from __future__ import annotations

from hardware.feetech.tables import (
    MEMORY_SIZE,
    REGISTERS,
    STS3215_REGISTERS,
    Access,
    decode_sign_magnitude,
    factory_memory,
)

_A = {name: reg.address for name, reg in REGISTERS.items()}
A_ID, A_BAUD, A_RETURN_DELAY = _A["ID"], _A["Baud_Rate"], _A["Return_Delay_Time"]
A_STATUS_LEVEL = _A["Response_Status_Level"]
A_MIN_POS, A_MAX_POS = _A["Min_Position_Limit"], _A["Max_Position_Limit"]
A_MAX_TEMP, A_MAX_VOLT, A_MIN_VOLT = _A["Max_Temperature_Limit"], _A["Max_Voltage_Limit"], _A["Min_Voltage_Limit"]
A_MAX_TORQUE, A_PHASE, A_UNLOADING = _A["Max_Torque_Limit"], _A["Phase"], _A["Unloading_Condition"]
A_P, A_D, A_I = _A["P_Coefficient"], _A["D_Coefficient"], _A["I_Coefficient"]
A_CW_DEAD, A_CCW_DEAD = _A["CW_Dead_Zone"], _A["CCW_Dead_Zone"]
A_PROT_CURRENT, A_HOMING, A_MODE = _A["Protection_Current"], _A["Homing_Offset"], _A["Operating_Mode"]
A_PROT_TIME, A_OVERLOAD, A_OC_TIME = _A["Protection_Time"], _A["Overload_Torque"], _A["Over_Current_Protection_Time"]
A_TORQUE, A_ACCEL, A_GOAL, A_GOAL_VEL = (
    _A["Torque_Enable"],
    _A["Acceleration"],
    _A["Goal_Position"],
    _A["Goal_Velocity"],
)
A_TORQUE_LIMIT, A_LOCK = _A["Torque_Limit"], _A["Lock"]
A_POS, A_VEL, A_LOAD = _A["Present_Position"], _A["Present_Velocity"], _A["Present_Load"]
A_VOLT, A_TEMP, A_ASYNC = _A["Present_Voltage"], _A["Present_Temperature"], _A["Async_Write_Flag"]
A_STATUS, A_MOVING, A_PGOAL, A_CURRENT = _A["Status"], _A["Moving"], _A["Present_Goal_Position"], _A["Present_Current"]
A_MOVING_THRESHOLD = _A["Moving_Velocity_Threshold"]

FACTORY = bytes(factory_memory())
WRITABLE = bytes(
    1 if any(r.access is Access.RW and a in r.addresses for r in STS3215_REGISTERS) else 0 for a in range(MEMORY_SIZE)
)
HOMING_BIT = REGISTERS["Homing_Offset"].sign_bit
HOMING_MAX = (1 << HOMING_BIT) - 1


def u16(mem: bytearray, a: int) -> int:
    return mem[a] | mem[a + 1] << 8


def s16(mem: bytearray, a: int, bit: int) -> int:
    return decode_sign_magnitude(mem[a] | mem[a + 1] << 8, bit)


def put16(mem: bytearray, a: int, raw: int) -> None:
    mem[a] = raw & 0xFF
    mem[a + 1] = raw >> 8 & 0xFF


def sm(value: int, bit: int) -> int:
    """Sign-magnitude encode, saturating the magnitude (a reading never overflows its field)."""
    mag = min(abs(value), (1 << bit) - 1)
    return mag | (1 << bit) if value < 0 else mag
