"""Feetech SCS/STS packet codec (protocol "0", little-endian), see hardware.md §1.

    Instruction:  FF FF | ID | LEN | INSTR | P1..PN | CHK
    Status:       FF FF | ID | LEN | ERROR | P1..PN | CHK
    LEN = N + 2,  CHK = ~(ID + LEN + INSTR/ERROR + P1 + ... + PN) & 0xFF

Both directions share the layout, so one streaming decoder serves the driver (status packets) and the emulator
(instruction packets). The decoder never raises on bad input: garbage and broken packets come out as typed
``ProtocolError`` values in the stream, and it resynchronises on the next ``FF FF`` header.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from hardware.feetech.errors import ChecksumError, MalformedPacketError, ProtocolError

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 0xFD  # highest id a servo can have (253); the SDKs scan 0..252
SCAN_MAX_ID = 0xFC
MAX_PACKET_SIZE = 250  # the SDKs' TX/RX packet limit (whole packet)
MAX_PARAMS = MAX_PACKET_SIZE - 6
MIN_LEN, MAX_LEN = 2, MAX_PARAMS + 2


class Instruction(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    RECOVERY = 0x06  # factory reset of every parameter except ID
    RESTART = 0x08
    BACKUP = 0x09
    RESET = 0x0A  # status reset: clears the multi-turn count
    OFSCAL = 0x0B  # position calibration: present position becomes the middle
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


def checksum(body: bytes | bytearray) -> int:
    """Checksum over ID, LEN, INSTR/ERROR and parameters (everything between header and checksum)."""
    return ~sum(body) & 0xFF


@dataclass(frozen=True)
class InstructionPacket:
    id: int
    instruction: int
    params: bytes = b""

    def encode(self) -> bytes:
        return _encode(self.id, self.instruction, self.params, broadcast_ok=True)

    @property
    def name(self) -> str:
        try:
            return Instruction(self.instruction).name
        except ValueError:
            return f"0x{self.instruction:02X}"


@dataclass(frozen=True)
class StatusPacket:
    id: int
    error: int
    params: bytes = b""

    def encode(self) -> bytes:
        return _encode(self.id, self.error, self.params, broadcast_ok=False)


def _encode(id_: int, code: int, params: bytes, *, broadcast_ok: bool) -> bytes:
    limit = BROADCAST_ID if broadcast_ok else MAX_ID
    if not 0 <= id_ <= limit:
        raise ValueError(f"id must be within 0..{limit}, got {id_}")
    if not 0 <= code <= 0xFF:
        raise ValueError(f"instruction/error byte must be within 0..255, got {code}")
    params = bytes(params)
    if len(params) > MAX_PARAMS:
        raise ValueError(f"{len(params)} parameter bytes exceed the {MAX_PARAMS}-byte packet limit")
    body = bytes((id_, len(params) + 2, code)) + params
    return HEADER + body + bytes((checksum(body),))


def instruction(id_: int, instr: int, params: bytes | list[int] = b"") -> bytes:
    """Encode an instruction packet."""
    return InstructionPacket(id_, int(instr), bytes(params)).encode()


def status(id_: int, error: int = 0, params: bytes | list[int] = b"") -> bytes:
    """Encode a status packet."""
    return StatusPacket(id_, error, bytes(params)).encode()


# Convenience encoders for each instruction (parameters as hardware.md §1.3 lays them out).
def ping(id_: int) -> bytes:
    return instruction(id_, Instruction.PING)


def read(id_: int, address: int, length: int) -> bytes:
    return instruction(id_, Instruction.READ, bytes((address, length)))


def write(id_: int, address: int, data: bytes) -> bytes:
    return instruction(id_, Instruction.WRITE, bytes((address,)) + bytes(data))


def reg_write(id_: int, address: int, data: bytes) -> bytes:
    return instruction(id_, Instruction.REG_WRITE, bytes((address,)) + bytes(data))


def action(id_: int = BROADCAST_ID) -> bytes:
    return instruction(id_, Instruction.ACTION)


def sync_read(ids: list[int], address: int, length: int) -> bytes:
    return instruction(BROADCAST_ID, Instruction.SYNC_READ, bytes((address, length, *ids)))


def sync_write(address: int, length: int, data: dict[int, bytes]) -> bytes:
    params = bytearray((address, length))
    for id_, chunk in data.items():
        if len(chunk) != length:
            raise ValueError(f"sync write to id {id_}: {len(chunk)} bytes given, {length} expected")
        params.append(id_)
        params += chunk
    return instruction(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


class PacketDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the packets and protocol errors completed so far.

    ``kind`` is "status" (bytes from servos: ERROR byte must be <= 0x7F, broadcast id is invalid) or "instruction"
    (bytes from a host). Incomplete tails stay buffered for the next ``feed``.
    """

    def __init__(self, kind: str = "status"):
        if kind not in ("status", "instruction"):
            raise ValueError("kind must be 'status' or 'instruction'")
        self.kind = kind
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a packet."""
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()

    def feed(self, data: bytes | bytearray) -> list[InstructionPacket | StatusPacket | ProtocolError]:
        if not self._buf and self.kind == "status":  # the usual case, one whole status packet: checked at once
            n = len(data)
            whole = n >= 6 and n == data[3] + 4 <= MAX_LEN + 4 and data[0] == 0xFF == data[1]
            if whole and data[2] <= MAX_ID and data[4] <= 0x7F and ~sum(data[2 : n - 1]) & 0xFF == data[n - 1]:
                return [StatusPacket(data[2], data[4], bytes(data[5 : n - 1]))]
        self._buf += data
        out: list[InstructionPacket | StatusPacket | ProtocolError] = []
        buf = self._buf
        max_id = BROADCAST_ID if self.kind == "instruction" else MAX_ID
        while True:
            start = buf.find(HEADER)
            if start < 0:
                # keep a trailing 0xFF: it may be the first half of the next header
                keep = 1 if buf.endswith(b"\xff") else 0
                if len(buf) > keep:
                    out.append(MalformedPacketError("garbage between packets", bytes(buf[: len(buf) - keep])))
                    del buf[: len(buf) - keep]
                return out
            if start:
                out.append(MalformedPacketError("garbage between packets", bytes(buf[:start])))
                del buf[:start]
            if len(buf) < 4:
                return out
            id_, length = buf[2], buf[3]
            if id_ > max_id or not MIN_LEN <= length <= MAX_LEN:
                # not a real header (e.g. FF FF FF ...): drop one byte and look again
                out.append(MalformedPacketError(f"bad header (id {id_}, length {length})", bytes(buf[:1])))
                del buf[:1]
                continue
            total = length + 4
            if len(buf) < total:
                return out
            if self.kind == "status" and buf[4] > 0x7F:
                out.append(MalformedPacketError(f"bad error byte 0x{buf[4]:02X}", bytes(buf[:1])))
                del buf[:1]
                continue
            body = bytes(buf[2 : total - 1])
            chk = buf[total - 1]
            if checksum(body) != chk:
                out.append(ChecksumError(bytes(buf[:total]), checksum(body), chk))
                del buf[:2]  # drop the header and resynchronise inside the rest
                continue
            params = body[3:]
            if self.kind == "status":
                out.append(StatusPacket(id_, body[2], params))
            else:
                out.append(InstructionPacket(id_, body[2], params))
            del buf[:total]


def wire_time(n_bytes: int, baudrate: int) -> float:
    """Seconds that ``n_bytes`` take on the wire: 10 bits per byte (start + 8 data + stop)."""
    return n_bytes * 10.0 / baudrate
