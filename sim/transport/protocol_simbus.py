"""pyserial URL handler ``simbus://``: an in-process emulated STS3215 bus behind an ordinary pyserial port.

``import sim`` registers it; then ``serial.serial_for_url("simbus://?ids=1-6", baudrate=1_000_000)`` returns a port
that any pyserial-based driver can use. URL form::

    simbus://[NAME][?ids=1-6&faults=corrupt:0.02;drop:0.01&timing=wire|instant&seed=0]

- ``NAME``: a process-wide named bus (``sim.feetech.bus.register_bus``/``get_bus``). Opening an existing name attaches
  to that bus, like two opens of one device; opening a new name creates it from the options and registers it. No
  name: a private bus for this port (kept across close/open of the same port object).
- ``ids``: servo ids to create, default ``1-6``; ranges and lists (``1-3,7`` or ``1+2+9``).
- ``faults``: a fault profile in ``FaultProfile.parse`` syntax, written with ``:`` and ``;`` so that it survives URL
  parsing: ``faults=corrupt:0.02;drop:0.01;late:0.01;late_ms:50;unplugged:3+4;overload:2;low_voltage:5``
  (``,`` and ``=`` work too when the URL is not otherwise parsed; ``+`` in id lists may arrive as a space, which is
  accepted).
- ``seed``: seed of the fault generator (overrides a ``seed`` inside ``faults``).
- ``timing``: ``instant`` (default) makes replies readable as soon as ``write()`` returns (late replies after their
  delay); ``wire`` delivers each reply byte at the time the wire-time model says it arrives (10 bits per byte at the
  port's baud rate, plus return delays), so round trips take what a real bus takes.

``ids``, ``faults`` and ``seed`` are used only when the URL creates the bus; ``timing`` is per port. The line baud
is the port's ``baudrate`` at each write, so a port opened at the wrong rate finds nobody and changing
``port.baudrate`` works like on a real adapter. The port exposes the ``SimBus`` as ``port.bus``.

Reads honour ``timeout`` (None blocks, 0 does not) and wait on a condition variable until the next byte is due or
the deadline passes: no polling loop. ``reset_input_buffer()`` discards what has arrived, not bytes still in flight.
"""

from __future__ import annotations

import dataclasses
import numbers
import threading
import time
import urllib.parse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException, to_bytes

from sim.feetech.bus import SimBus, get_or_create_bus
from sim.feetech.faults import FaultProfile, parse_id_list

DEFAULT_IDS = "1-6"
_OPTIONS = ("ids", "faults", "timing", "seed")


class _Incoming:
    """One reply on its way to the host: byte k has arrived at ``start + (k + 1) * per_byte``."""

    __slots__ = ("data", "per_byte", "start", "taken")

    def __init__(self, data: bytes, start: float, per_byte: float):
        self.data = data
        self.start = start
        self.per_byte = per_byte
        self.taken = 0

    def arrived(self, now: float) -> int:
        if now < self.start:
            return 0
        if self.per_byte <= 0.0:
            return len(self.data)
        return min(len(self.data), int((now - self.start) / self.per_byte + 1e-9))

    def time_of(self, count: int) -> float:
        """When the first ``count`` bytes have arrived."""
        return self.start + count * self.per_byte


class Serial(SerialBase):
    """A pyserial port whose other end is a ``SimBus`` (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        self._bus: SimBus | None = None
        self._bus_url: str | None = None
        self._timing = "instant"
        self._cond = threading.Condition()
        self._rx = bytearray()
        self._incoming: list[_Incoming] = []
        self._cancel = False
        super().__init__(*args, **kwargs)

    # --- lifecycle --------------------------------------------------------------------------------------------------
    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        self.from_url(self.port)
        self._reconfigure_port()
        with self._cond:
            self._rx.clear()
            self._incoming.clear()
            self._cancel = False
        self.is_open = True

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            with self._cond:
                self._cond.notify_all()
        super().close()

    def from_url(self, url: str) -> None:
        """Parse a ``simbus://`` URL and find or create its bus."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() != "simbus":
            raise SerialException(f"expected a URL of the form simbus://[NAME][?options], got {url!r}")
        try:
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        except ValueError as exc:
            raise SerialException(f"bad simbus:// query in {url!r}: {exc}") from None
        unknown = sorted(set(query) - set(_OPTIONS))
        if unknown:
            raise SerialException(
                f"unknown simbus:// option(s) {', '.join(unknown)} in {url!r}; known: {', '.join(_OPTIONS)} "
                "(e.g. simbus://arm?ids=1-6&faults=corrupt:0.02;drop:0.01&timing=wire)"
            )
        opts = {k: v[-1] for k, v in query.items()}
        timing = opts.get("timing", "instant").strip().lower() or "instant"
        if timing not in ("instant", "wire"):
            raise SerialException(f"simbus:// timing must be 'instant' or 'wire', got {timing!r}")
        self._timing = timing
        if self._bus is not None and self._bus_url == url:
            return  # reopening the same port: same bus
        name = (parts.netloc + parts.path).strip("/")

        def build() -> SimBus:
            try:
                ids = parse_id_list(opts.get("ids") or DEFAULT_IDS)
                faults = FaultProfile.parse(opts.get("faults", ""))
                if opts.get("seed", "").strip():
                    faults = dataclasses.replace(faults, seed=int(opts["seed"]))
            except ValueError as exc:
                raise SerialException(f"bad simbus:// URL {url!r}: {exc}") from None
            return SimBus(ids=ids, faults=faults)

        self._bus = get_or_create_bus(name, build)[0] if name else build()
        self._bus_url = url

    def _reconfigure_port(self) -> None:
        if not isinstance(self._baudrate, numbers.Integral) or not 0 < self._baudrate < 2**32:
            raise ValueError(f"invalid baudrate: {self._baudrate!r}")

    # --- what this port adds ----------------------------------------------------------------------------------------
    @property
    def bus(self) -> SimBus:
        """The emulated bus behind this port (after ``open``)."""
        if self._bus is None:
            raise SerialException("simbus:// port not opened yet: no bus")
        return self._bus

    @property
    def timing(self) -> str:
        return self._timing

    # --- data -------------------------------------------------------------------------------------------------------
    def write(self, data) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        data = to_bytes(data)
        if not data:
            return 0
        bus = self._bus
        t = bus.clock()
        now = time.monotonic()  # before transact: the emulator's own computing time is not wire time
        replies = bus.transact(data, t, self._baudrate)
        if replies:
            with self._cond:
                if self._timing == "wire":
                    per_byte = 10.0 / self._baudrate
                    for r in replies:
                        end = now + (r.ready_at - t)
                        self._incoming.append(_Incoming(r.data, end - len(r.data) * per_byte, per_byte))
                else:
                    delay = 0.0
                    for r in replies:
                        delay += r.late_s  # a late reply holds back the ones behind it, as on the wire
                        self._incoming.append(_Incoming(r.data, now + delay, 0.0))
                if len(self._incoming) > len(replies):
                    self._incoming.sort(key=lambda e: e.start)
                self._cond.notify_all()
        return len(data)

    def _pump(self, now: float) -> None:
        """Move the bytes that have arrived by ``now`` into the receive buffer (caller holds the lock)."""
        incoming = self._incoming
        while incoming:
            e = incoming[0]
            n = e.arrived(now)
            if n > e.taken:
                self._rx += e.data[e.taken : n]
                e.taken = n
            if e.taken < len(e.data):
                return  # the wire is FIFO: later replies wait behind this one
            incoming.pop(0)

    def _when(self, need: int) -> float | None:
        """Monotonic time at which ``need`` more bytes will have arrived (or the last byte in flight), else None."""
        t = None
        for e in self._incoming:
            left = len(e.data) - e.taken
            if need <= left:
                return e.time_of(e.taken + need)
            need -= left
            t = e.time_of(len(e.data))
        return t

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        timeout = self._timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cancel = False
            while True:
                now = time.monotonic()
                self._pump(now)
                if len(self._rx) >= size or timeout == 0 or self._cancel or not self.is_open:
                    break
                if deadline is not None and now >= deadline:
                    break
                wake = self._when(size - len(self._rx))
                if deadline is not None:
                    wake = deadline if wake is None else min(wake, deadline)
                self._cond.wait(None if wake is None else max(0.0, wake - now))
            out = bytes(self._rx[:size])
            del self._rx[:size]
            return out

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        with self._cond:
            self._pump(time.monotonic())
            return len(self._rx)

    @property
    def out_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return 0

    def reset_input_buffer(self) -> None:
        """Discard what has arrived (bytes still on the wire arrive later, as on a real port)."""
        if not self.is_open:
            raise PortNotOpenError()
        with self._cond:
            self._pump(time.monotonic())
            self._rx.clear()

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    def flush(self) -> None:
        pass  # nothing is ever buffered on the way out (also called by io's close())

    def cancel_read(self) -> None:
        with self._cond:
            self._cancel = True
            self._cond.notify_all()

    def cancel_write(self) -> None:
        pass

    # --- modem lines: nothing behind them ---------------------------------------------------------------------------
    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        if not self.is_open:
            raise PortNotOpenError()
        return True

    @property
    def dsr(self) -> bool:
        if not self.is_open:
            raise PortNotOpenError()
        return True

    @property
    def ri(self) -> bool:
        if not self.is_open:
            raise PortNotOpenError()
        return False

    @property
    def cd(self) -> bool:
        if not self.is_open:
            raise PortNotOpenError()
        return True
