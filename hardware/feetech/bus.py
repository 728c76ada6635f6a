"""FeetechBus: the host side of a Feetech STS serial bus, over any pyserial-compatible port.

One transaction = one instruction packet out, then the status packets it asks for back. Timeouts follow from the baud
rate and the bytes on the wire (plus a latency margin for the USB-serial adapter). Waiting for replies
(``replies.py``): sleep until they are due on the wire, poll briefly, then a blocking read until the timeout; never
a spin for the whole round trip. Checksum errors and timeouts are retried a bounded number of times and
counted in ``bus.stats``; fault bits in a status packet become a ``ServoError`` naming the servo and the fault.

Setting servos up (scan, id, baud rate, EEPROM writes) is ``ServoAssembly`` (``assembly.py``), which the bus is.
The driver knows protocols and registers only: no arms, joints or units (those live in robot/).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import serial

from hardware.feetech import protocol as proto
from hardware.feetech.assembly import ServoAssembly
from hardware.feetech.errors import (
    PORT_ERRORS,
    BusDisconnectedError,
    BusTimeoutError,
    ChecksumError,
    FeetechError,
    MalformedPacketError,
    ProtocolError,
    ServoError,
)
from hardware.feetech.protocol import BROADCAST_ID, PacketDecoder, StatusPacket
from hardware.feetech.replies import BusStats, ReplyReader, ReplyWait
from hardware.feetech.tables import Register, decode_sign_magnitude, register

log = logging.getLogger(__name__)

_UNSIGNED = functools.partial(int.from_bytes, byteorder="little")
RETURN_DELAY_MAX_S = 508e-6  # Return_Delay_Time 254 x 2 us: the longest a servo may wait before answering
DEFAULT_BAUDRATE = 1_000_000


class FeetechBus(ServoAssembly):
    """Feetech STS bus driver.

    ``port`` is a pyserial-compatible object (``serial.Serial``, ``serial.serial_for_url(...)``, an emulator port) or
    a device path / pyserial URL opened on ``connect()``. The constructor touches no device.

    ``retries``: extra attempts after a checksum error or a timeout (reads and writes with a reply are idempotent).
    ``latency_s``: margin added to the wire time before a reply counts as missing (USB-serial adapters buffer).
    ``names``: optional id -> name map used in error messages ("servo 3 (elbow_flex)").
    ``return_delay_s``: the servos' Return_Delay_Time (x 2 us), when the replies are due (not the timeout, which
    allows the longest). ``wait``: when to look for replies (``replies.ReplyWait``; learns the port's lag).
    """

    def __init__(
        self,
        port: str | serial.SerialBase,
        baudrate: int = DEFAULT_BAUDRATE,
        *,
        retries: int = 3,
        latency_s: float = 0.02,
        names: Mapping[int, str] | None = None,
        return_delay_s: float = 0.0,
        wait: ReplyWait | None = None,
    ):
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self._port_arg = port
        self._port: serial.SerialBase | None = port if isinstance(port, serial.SerialBase) else None
        self._baudrate = int(baudrate)
        self.retries = retries
        self.latency_s = float(latency_s)
        self.names = dict(names or {})
        self.return_delay_s = float(return_delay_s)
        self.stats = BusStats()
        self.wait = wait or ReplyWait()
        self.wait.max_offset_s = self.latency_s
        self._reader = ReplyReader(self.stats, self.wait)
        # SYNC_READ requests by (ids, address, length): a control loop asks the same ones at every tick
        self._sync_reads: dict[tuple[tuple[int, ...], int, int], tuple] = {}

    # ----------------------------------------------------------------------------------------------- lifecycle
    @property
    def port_name(self) -> str:
        return self._port_arg if isinstance(self._port_arg, str) else str(getattr(self._port_arg, "port", "<port>"))

    @property
    def is_connected(self) -> bool:
        return self._port is not None and self._port.is_open

    def connect(self) -> FeetechBus:
        if self.is_connected:
            return self
        try:
            if self._port is None:
                self._port = serial.serial_for_url(self._port_arg, baudrate=self._baudrate, timeout=0)
            else:
                self._port.baudrate = self._baudrate
                if not self._port.is_open:
                    self._port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            self._port = None if isinstance(self._port_arg, str) else self._port
            raise FeetechError(
                f"cannot open servo bus port {self.port_name!r}: {exc}. Check the USB cable and the port name "
                "(`onboard find port` shows which port appears when the board is plugged in); on Linux the user "
                "needs access to the device (the `dialout` group, or a udev rule)."
            ) from exc
        self._reader.forget_port()
        return self

    def disconnect(self) -> None:
        try:
            if self._port is not None and self._port.is_open:
                self._port.close()
        except PORT_ERRORS as exc:  # a device that went away: the port is closed as far as we can close it
            log.warning("closing %s: %s", self.port_name, exc)
        finally:
            if isinstance(self._port_arg, str):
                self._port = None

    def __enter__(self) -> FeetechBus:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    @property
    def port(self) -> serial.SerialBase:
        if not self.is_connected:
            raise FeetechError("the bus is not connected: call connect() (or use `with FeetechBus(...) as bus:`)")
        assert self._port is not None
        return self._port

    @property
    def baudrate(self) -> int:
        return self._baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._baudrate = int(value)
        if self.is_connected:
            self.port.baudrate = self._baudrate

    def _name(self, servo_id: int) -> str | None:
        return self.names.get(servo_id)

    # --------------------------------------------------------------------------------------------- transactions
    def timeout_for(self, request_bytes: int, reply_bytes: int, n_replies: int) -> float:
        """Seconds to wait for ``n_replies`` status packets totalling ``reply_bytes`` after a request."""
        wire = proto.wire_time(request_bytes + reply_bytes, self._baudrate)
        return wire + n_replies * RETURN_DELAY_MAX_S + self.latency_s

    def reply_due(self, request_bytes: int, reply_bytes: int, n_replies: int) -> float:
        """Seconds from writing a request until its ``n_replies`` status packets can have arrived: the wire time of
        the bytes plus the servos' return delay (``return_delay_s``: Return_Delay_Time x 2 us, 0 as LeRobot and the
        factory set it). The driver sleeps until about then (``wait``) before it looks for them."""
        return proto.wire_time(request_bytes + reply_bytes, self._baudrate) + n_replies * self.return_delay_s

    def transact(
        self,
        packet: bytes,
        expect: Sequence[tuple[int, int]],
        what: str,
        rebuild: Callable[[list[int]], bytes] | None = None,
        on_reply: Callable[[StatusPacket], None] | None = None,
    ) -> dict[int, StatusPacket]:
        """Send ``packet`` and collect one status packet per ``(servo_id, n_params)`` in ``expect``, in order.

        Retries on checksum errors, malformed replies and timeouts; raises the last error when retries run out.
        With ``rebuild`` (ids -> packet), a retry asks only the servos whose replies are still missing (sync read).
        Status packets whose ERROR byte is non-zero are returned as they are: callers decide (see ``_check``).
        ``on_reply`` is called with each reply as it is taken (``ReplyReader.collect``).
        An OS or serial error on the port (the device went away) raises ``BusDisconnectedError`` at once.
        """
        try:
            return self._transact(packet, expect, what, rebuild, on_reply)
        except PORT_ERRORS as exc:
            servo_id = expect[0][0] if expect else (packet[2] if len(packet) > 2 else None)
            raise BusDisconnectedError(self.port_name, exc, servo_id, what) from exc

    def _transact(self, packet: bytes, expect, what: str, rebuild, on_reply=None) -> dict[int, StatusPacket]:
        port = self.port
        reader = self._reader
        if not isinstance(expect, list):
            expect = list(expect)
        got: dict[int, StatusPacket] = {}
        last_error: ProtocolError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
                log.debug("retry %d of %s after %s", attempt, what, last_error)
                if rebuild is not None:
                    expect = [(i, n) for i, n in expect if i not in got]
                    packet = rebuild([i for i, _ in expect])
            # the caller's clock runs from here to the replies: nothing but the flush (no stale bytes taken for ours)
            # and the write before the request is out
            reader.send(port, packet, flush=bool(expect))
            self.stats.transactions += 1
            if not expect:
                return {}
            sent_at = time.monotonic()  # what follows is done while the bytes are on the wire
            reply_bytes = sum(6 + n for _, n in expect)
            timeout = self.timeout_for(len(packet), reply_bytes, len(expect))
            due = sent_at + self.reply_due(len(packet), reply_bytes, len(expect))
            last_s = proto.wire_time(6 + expect[-1][1], self._baudrate) + self.return_delay_s
            replies, last_error = self._reader.collect(
                port, expect, what, sent_at=sent_at, due=due, timeout=timeout, last_s=last_s, on_reply=on_reply
            )
            if rebuild is not None:
                got.update(replies)
            if last_error is None:
                return got if rebuild is not None else replies
            if isinstance(last_error, BusTimeoutError):
                self.stats.timeouts += 1
            elif isinstance(last_error, ChecksumError):
                self.stats.checksum_errors += 1
            else:
                self.stats.malformed += 1
            # let any replies still on the wire finish before the next request, or they would collide with it
            time.sleep(min(timeout, proto.wire_time(reply_bytes, self._baudrate) + len(expect) * RETURN_DELAY_MAX_S))
        assert last_error is not None
        if isinstance(last_error, ChecksumError):  # say which servo's replies keep arriving damaged
            raise last_error.for_servo(what, self.retries + 1, self._name(last_error.servo_id or -1))
        raise last_error

    def _set_timeout(self, timeout: float) -> None:
        self._reader.set_timeout(self.port, timeout)

    def _check(self, reply: StatusPacket, what: str) -> None:
        if reply.error:
            self.stats.servo_errors += 1
            raise ServoError(reply.id, reply.error, what, self._name(reply.id))

    # ------------------------------------------------------------------------------------------- instructions
    def ping(self, servo_id: int) -> StatusPacket:
        """PING one servo; returns its status packet (raises BusTimeoutError if it does not answer)."""
        replies = self.transact(proto.ping(servo_id), [(servo_id, 0)], "PING")
        return replies[servo_id]

    def try_ping(self, servo_id: int, *, retries: int = 0) -> bool:
        saved, self.retries = self.retries, retries
        try:
            self.ping(servo_id)
            return True
        except (BusTimeoutError, ChecksumError, MalformedPacketError):
            return False
        finally:
            self.retries = saved

    def read_bytes(self, servo_id: int, address: int, length: int, *, check_status: bool = True) -> bytes:
        what = f"READ {length} byte(s) at {address}"
        reply = self.transact(proto.read(servo_id, address, length), [(servo_id, length)], what)[servo_id]
        if check_status:
            self._check(reply, what)
        return reply.params

    def write_bytes(self, servo_id: int, address: int, data: bytes, *, check_status: bool = True) -> None:
        """WRITE; waits for the status reply unless broadcast (or the servo's Response_Status_Level is 0:
        pass ``servo_id`` replies off with ``no_reply``)."""
        what = f"WRITE {len(data)} byte(s) at {address}"
        expect = [] if servo_id == BROADCAST_ID else [(servo_id, 0)]
        replies = self.transact(proto.write(servo_id, address, data), expect, what)
        if replies and check_status:
            self._check(replies[servo_id], what)

    def read(self, servo_id: int, reg: str | int | Register, *, check_status: bool = True) -> int:
        r = register(reg)
        return r.decode(self.read_bytes(servo_id, r.address, r.size, check_status=check_status))

    def read_registers(
        self, servo_id: int, regs: Iterable[str | int | Register], *, check_status: bool = True
    ) -> dict[str, int]:
        """Read several registers with one READ spanning them; returns name -> decoded value."""
        rs = [register(r) for r in regs]
        start = min(r.address for r in rs)
        end = max(r.address + r.size for r in rs)
        data = self.read_bytes(servo_id, start, end - start, check_status=check_status)
        return {r.name: r.decode(data[r.address - start : r.address - start + r.size]) for r in rs}

    def write(
        self, servo_id: int, reg: str | int | Register, value: int, *, check_status: bool = True, check_range=True
    ) -> None:
        r = register(reg)
        if not r.writable:
            raise FeetechError(f"{r.name} (address {r.address}) is read-only; the servo would ignore the write")
        if check_range:
            r.check_range(value)
        self.write_bytes(servo_id, r.address, r.encode(value), check_status=check_status)

    def reg_write(self, servo_id: int, reg: str | int | Register, value: int, *, check_status: bool = True) -> None:
        """REG_WRITE: the servo buffers the write until ACTION."""
        r = register(reg)
        r.check_range(value)
        what = f"REG_WRITE {r.name}"
        expect = [] if servo_id == BROADCAST_ID else [(servo_id, 0)]
        replies = self.transact(proto.reg_write(servo_id, r.address, r.encode(value)), expect, what)
        if replies and check_status:
            self._check(replies[servo_id], what)

    def action(self, servo_id: int = BROADCAST_ID) -> None:
        """ACTION: execute buffered REG_WRITEs (broadcast by default, no reply)."""
        expect = [] if servo_id == BROADCAST_ID else [(servo_id, 0)]
        self.transact(proto.action(servo_id), expect, "ACTION")

    def sync_read_bytes(
        self, ids: Sequence[int], address: int, length: int, *, check_status: bool = True
    ) -> dict[int, bytes]:
        return self._sync_read(ids, address, length, check_status, None)

    def sync_read(self, reg: str | int | Register, ids: Sequence[int], *, check_status: bool = True) -> dict[int, int]:
        """SYNC_READ one register from several servos (one request, one reply per servo in id order)."""
        r = register(reg)
        # not r.decode: each reply's size was checked as it was collected (the control loop's hot path)
        sign_bit = r.sign_bit
        if sign_bit is None:
            return self._sync_read(ids, r.address, r.size, check_status, _UNSIGNED)
        return self._sync_read(
            ids, r.address, r.size, check_status, lambda p: decode_sign_magnitude(int.from_bytes(p, "little"), sign_bit)
        )

    def _sync_read(
        self, ids: Sequence[int], address: int, length: int, check_status: bool, decode: Callable[[bytes], int] | None
    ) -> dict:
        """One SYNC_READ: id -> the reply's data bytes (``decode`` None) or ``decode(data)``, in id order.

        What is done before the write and after the last reply counts in the round trip, so: the request, what it
        expects and how to ask again for the missing ones are built once per (ids, address, length) (a control loop
        asks the same ones every tick), and each reply is decoded as it is taken, the early ones while the last is
        still on the wire (replies come in request order, and a retry asks for the missing ones in that order)."""
        key = (ids if isinstance(ids, tuple) else tuple(ids), address, length)
        if (request := self._sync_reads.get(key)) is None:
            request = (
                proto.sync_read(key[0], address, length),
                [(i, length) for i in key[0]],
                f"SYNC_READ {length} byte(s) at {address}",
                lambda pending: proto.sync_read(pending, address, length),
            )
            if len(self._sync_reads) < 64:
                self._sync_reads[key] = request
        packet, expect, what, rebuild = request
        values: dict = {}
        faults: list[StatusPacket] = []

        def take(reply: StatusPacket) -> None:
            values[reply.id] = reply.params if decode is None else decode(reply.params)
            if reply.error:
                faults.append(reply)

        self.transact(packet, expect, what, rebuild, take)
        if check_status and faults:
            self._check(faults[0], what)
        return values

    def sync_write(self, reg: str | int | Register, values: Mapping[int, int], *, check_range: bool = True) -> None:
        """SYNC_WRITE one register on several servos (broadcast, no reply)."""
        r = register(reg)
        if check_range:
            for v in values.values():
                r.check_range(v)
        packet = proto.sync_write(r.address, r.size, {i: r.encode(v) for i, v in values.items()})
        self.transact(packet, [], f"SYNC_WRITE {r.name}")

    def sync_write_bytes(self, address: int, length: int, data: Mapping[int, bytes]) -> None:
        self.transact(proto.sync_write(address, length, dict(data)), [], f"SYNC_WRITE at {address}")

    def broadcast_ping(self, timeout_s: float | None = None) -> dict[int, int]:
        """Broadcast PING: every servo answers (use with one servo on the bus: several answers collide on a
        real bus). Returns id -> status byte for the answers that arrived intact."""
        try:
            return self._broadcast_ping(timeout_s)
        except PORT_ERRORS as exc:
            raise BusDisconnectedError(self.port_name, exc, BROADCAST_ID, "broadcast PING") from exc

    def _broadcast_ping(self, timeout_s: float | None) -> dict[int, int]:
        port = self.port
        self.stats.transactions += 1
        port.reset_input_buffer()
        port.write(proto.ping(BROADCAST_ID))
        self._set_timeout(timeout_s if timeout_s is not None else self.timeout_for(6, 6 * 8, 8))
        found: dict[int, int] = {}
        decoder = PacketDecoder("status")
        while True:
            chunk = port.read(4096)
            if not chunk:
                return found
            for item in decoder.feed(chunk):
                if isinstance(item, StatusPacket):
                    found[item.id] = item.error
