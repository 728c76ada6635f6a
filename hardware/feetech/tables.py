"""The STS3215 memory table as data, shared by the driver (hardware/) and the emulator (sim/).

Source: ../shared/reference/hardware.md §2 (Feetech's STS memory table, with the Waveshare ST3215 table for the
values Feetech prints as "-"). Names follow LeRobot's ``STS_SMS_SERIES_CONTROL_TABLE`` so that register names mean
the same thing in both projects. Where sources disagree the choice is noted in ``doc``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum

from hardware.feetech.errors import RegisterError


class Area(Enum):
    EEPROM = "eeprom"  # persisted across power cycles when Lock = 0
    SRAM = "sram"  # lost at power-off
    FACTORY = "factory"  # factory parameters, read-only


class Access(Enum):
    R = "r"
    RW = "rw"


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int  # bytes, 1 or 2; 2-byte values are little-endian on STS servos
    area: Area
    access: Access
    default: int  # factory value (decoded, signed where sign_bit is set)
    sign_bit: int | None = None  # sign-magnitude sign bit, None for unsigned
    min: int | None = None
    max: int | None = None
    unit: str = ""
    doc: str = ""

    @property
    def writable(self) -> bool:
        return self.access is Access.RW

    @property
    def addresses(self) -> range:
        return range(self.address, self.address + self.size)

    def encode(self, value: int) -> bytes:
        """Decoded value -> the bytes stored in the servo (little-endian, sign-magnitude where applicable)."""
        value = int(value)
        if self.sign_bit is not None:
            raw = encode_sign_magnitude(value, self.sign_bit)
        else:
            if value < 0:
                raise RegisterError(f"{self.name} is unsigned; cannot store {value}")
            raw = value
        if raw >= 1 << (8 * self.size):
            raise RegisterError(f"{value} does not fit {self.name} ({self.size} byte{'s' if self.size > 1 else ''})")
        return raw.to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        """Bytes read from the servo -> decoded value."""
        if len(data) != self.size:
            raise RegisterError(f"{self.name} is {self.size} bytes, got {len(data)}")
        raw = int.from_bytes(data, "little")
        return decode_sign_magnitude(raw, self.sign_bit) if self.sign_bit is not None else raw

    def check_range(self, value: int) -> None:
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise RegisterError(f"{self.name} must be within {self.min}..{self.max} {self.unit}, got {value}".rstrip())


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """Feetech's signed encoding: magnitude in the low bits, sign in ``sign_bit`` (NOT two's complement)."""
    magnitude = abs(int(value))
    if magnitude >= 1 << sign_bit:
        raise RegisterError(f"|{value}| does not fit below sign bit {sign_bit} (max {(1 << sign_bit) - 1})")
    return (1 << sign_bit) | magnitude if value < 0 else magnitude


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw >> sign_bit & 1 else magnitude


E, S, F = Area.EEPROM, Area.SRAM, Area.FACTORY
R, RW = Access.R, Access.RW

# fmt: off
STS3215_REGISTERS: tuple[Register, ...] = (
    Register("Firmware_Major_Version", 0, 1, E, R, 3, doc="Waveshare table value (firmware 3.6)"),
    Register("Firmware_Minor_Version", 1, 1, E, R, 6),
    Register("Endianness", 2, 1, E, R, 0, doc="0 = little-endian (STS)"),
    Register("Model_Number", 3, 2, E, R, 777, doc="LE word of 'main version' 9 and 'sub version' 3: STS3215 = 777"),
    Register("ID", 5, 1, E, RW, 1, min=0, max=253),
    Register("Baud_Rate", 6, 1, E, RW, 0, min=0, max=7, doc="code, see BAUD_RATES (Feetech's table)"),
    Register("Return_Delay_Time", 7, 1, E, RW, 0, min=0, max=254, unit="2 us",
             doc="'Reserved' in Feetech's STS table; 2 us units per the SMS/Waveshare tables"),
    Register("Response_Status_Level", 8, 1, E, RW, 1, min=0, max=1,
             doc="0: reply only to READ and PING; 1: reply to every instruction"),
    Register("Min_Position_Limit", 9, 2, E, RW, 0, min=0, max=4094, unit="step"),
    Register("Max_Position_Limit", 11, 2, E, RW, 4095, min=1, max=4095, unit="step"),
    Register("Max_Temperature_Limit", 13, 1, E, RW, 70, min=0, max=100, unit="degC"),
    Register("Max_Voltage_Limit", 14, 1, E, RW, 80, min=0, max=254, unit="0.1 V", doc="7.4 V table value"),
    Register("Min_Voltage_Limit", 15, 1, E, RW, 40, min=0, max=254, unit="0.1 V"),
    Register("Max_Torque_Limit", 16, 2, E, RW, 1000, min=0, max=1000, unit="0.1 %",
             doc="copied to Torque_Limit (48) at power-on"),
    Register("Phase", 18, 1, E, RW, 12, min=0, max=254, doc="bits: 2 speed unit, 3 speed 0 = max, 4 multi-turn"),
    Register("Unloading_Condition", 19, 1, E, RW, 44, min=0, max=254, doc="Status bits that turn torque off"),
    Register("LED_Alarm_Condition", 20, 1, E, RW, 47, min=0, max=254, doc="Status bits that blink the LED"),
    Register("P_Coefficient", 21, 1, E, RW, 32, min=0, max=254),
    Register("D_Coefficient", 22, 1, E, RW, 32, min=0, max=254),
    Register("I_Coefficient", 23, 1, E, RW, 0, min=0, max=254),
    Register("Minimum_Startup_Force", 24, 1, E, RW, 16, min=0, max=254, unit="0.1 %",
             doc="1 byte per Feetech; LeRobot reads 24-25 as one word (which also works: 25 defaults to 0)"),
    Register("Integral_Limit", 25, 1, E, RW, 0, min=0, max=254, doc="Feetech only; 0 = off"),
    Register("CW_Dead_Zone", 26, 1, E, RW, 1, min=0, max=32, unit="step"),
    Register("CCW_Dead_Zone", 27, 1, E, RW, 1, min=0, max=32, unit="step"),
    Register("Protection_Current", 28, 2, E, RW, 511, min=0, max=2047, unit="6.5 mA"),
    Register("Angular_Resolution", 30, 1, E, RW, 1, min=1, max=128),
    Register("Homing_Offset", 31, 2, E, RW, 0, sign_bit=11, min=-2047, max=2047, unit="step",
             doc="Present_Position = Actual - Homing_Offset"),
    Register("Operating_Mode", 33, 1, E, RW, 0, min=0, max=3, doc="0 position, 1 speed, 2 PWM, 3 step"),
    Register("Protective_Torque", 34, 1, E, RW, 20, min=0, max=254, unit="1 %", doc="holding torque after overload"),
    Register("Protection_Time", 35, 1, E, RW, 200, min=0, max=254, unit="10 ms"),
    Register("Overload_Torque", 36, 1, E, RW, 80, min=0, max=254, unit="1 %",
             doc="load that starts the overload timer"),
    Register("Velocity_closed_loop_P_proportional_coefficient", 37, 1, E, RW, 10, min=0, max=254),
    Register("Over_Current_Protection_Time", 38, 1, E, RW, 200, min=0, max=254, unit="10 ms"),
    Register("Velocity_closed_loop_I_integral_coefficient", 39, 1, E, RW, 10, min=0, max=254),
    Register("Torque_Enable", 40, 1, S, RW, 0, min=0, max=128,
             doc="0 off, 1 on, 2 damping, 128 = make the present position read 2048"),
    Register("Acceleration", 41, 1, S, RW, 0, min=0, max=254, unit="100 step/s^2", doc="0 = maximum"),
    Register("Goal_Position", 42, 2, S, RW, 0, sign_bit=15, min=-32767, max=32767, unit="step"),
    Register("Goal_Time", 44, 2, S, RW, 0, min=0, max=1000, doc="PWM open-loop output in mode 2"),
    Register("Goal_Velocity", 46, 2, S, RW, 0, sign_bit=15, min=-32767, max=32767, unit="step/s",
             doc="0 = maximum speed (Phase bit3)"),
    Register("Torque_Limit", 48, 2, S, RW, 1000, min=0, max=1000, unit="0.1 %"),
    Register("Lock", 55, 1, S, RW, 1, min=0, max=1,
             doc="0: EEPROM writes are saved; 1: not saved. Default 1 per Feetech (Waveshare says 0)"),
    Register("Present_Position", 56, 2, S, R, 0, sign_bit=15, unit="step"),
    Register("Present_Velocity", 58, 2, S, R, 0, sign_bit=15, unit="step/s"),
    Register("Present_Load", 60, 2, S, R, 0, sign_bit=10, unit="0.1 %"),
    Register("Present_Voltage", 62, 1, S, R, 74, unit="0.1 V"),
    Register("Present_Temperature", 63, 1, S, R, 25, unit="degC"),
    Register("Async_Write_Flag", 64, 1, S, R, 0, doc="1 while a REG_WRITE waits for ACTION"),
    Register("Status", 65, 1, S, R, 0, doc="fault bits, as the status packet's ERROR byte"),
    Register("Moving", 66, 1, S, R, 0),
    Register("Present_Goal_Position", 67, 2, S, R, 0, sign_bit=15, unit="step", doc="goal the servo is tracking"),
    Register("Present_Current", 69, 2, S, R, 0, unit="6.5 mA"),
    Register("Moving_Velocity_Threshold", 80, 1, F, R, 50, doc="factory value not documented; emulator value"),
    Register("DTs", 81, 1, F, R, 1, unit="ms", doc="factory value not documented; emulator value"),
    Register("Velocity_Unit_factor", 82, 1, F, R, 1, doc="factory value not documented; emulator value"),
    Register("Hts", 83, 1, F, R, 1, doc="factory value not documented; emulator value"),
    Register("Maximum_Velocity_Limit", 84, 1, F, R, 54, unit="0.732 rpm", doc="~40 rpm no-load; emulator value"),
    Register("Maximum_Acceleration", 85, 1, F, R, 254,
             doc="read-only per Feetech; LeRobot writes 254 here, which the servo ignores"),
    Register("Acceleration_Multiplier", 86, 1, F, R, 1, doc="factory value not documented; emulator value"),
)
# fmt: on

MEMORY_SIZE = 128  # bytes of addressable memory; undefined addresses read 0
EEPROM_END = 40  # addresses below this are EEPROM

REGISTERS: dict[str, Register] = {r.name: r for r in STS3215_REGISTERS}
REGISTER_AT: dict[int, Register] = {r.address: r for r in STS3215_REGISTERS}

# LeRobot spellings that differ from ours, so that names copied from LeRobot code or docs work.
ALIASES = {
    "Goal_Speed": "Goal_Velocity",
    "Present_Speed": "Present_Velocity",
    "Moving_Velocity": "Moving_Velocity_Threshold",
    "Acceleration_Multiplier ": "Acceleration_Multiplier",
}

# Baud-rate codes of register 6, Feetech's table (LeRobot's codes 5-7 are off by one, see hardware.md §1.8).
BAUD_RATES: dict[int, int] = {
    0: 1_000_000,
    1: 500_000,
    2: 250_000,
    3: 128_000,
    4: 115_200,
    5: 76_800,
    6: 57_600,
    7: 38_400,
}
BAUD_CODES: dict[int, int] = {baud: code for code, baud in BAUD_RATES.items()}

MODEL_NUMBERS: dict[int, str] = {777: "sts3215", 2825: "sts3250", 11272: "sm8512bl", 1284: "scs0009"}
RESOLUTION = 4096  # steps per turn


def register(name_or_address: str | int | Register) -> Register:
    """Look a register up by name (ours or LeRobot's), by address, or pass one through."""
    if isinstance(name_or_address, Register):
        return name_or_address
    if isinstance(name_or_address, int):
        try:
            return REGISTER_AT[name_or_address]
        except KeyError:
            raise RegisterError(f"no STS3215 register starts at address {name_or_address}") from None
    name = ALIASES.get(name_or_address, name_or_address)
    try:
        return REGISTERS[name]
    except KeyError:
        folded = {n.lower().replace("_", ""): n for n in REGISTERS}
        key = name.lower().replace("_", "")
        close = [folded[k] for k in difflib.get_close_matches(key, folded, n=3, cutoff=0.6)]
        hint = f" Did you mean {', '.join(close)}?" if close else " `onboard bus registers` lists them."
        raise RegisterError(f"unknown register {name_or_address!r}.{hint}") from None


def factory_memory() -> bytearray:
    """The memory image of a new STS3215 with factory defaults."""
    mem = bytearray(MEMORY_SIZE)
    for reg in STS3215_REGISTERS:
        mem[reg.address : reg.address + reg.size] = reg.encode(reg.default)
    return mem
