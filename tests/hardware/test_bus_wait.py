"""When the Feetech driver looks for replies (hardware/feetech/replies.py): once at once, then not before they are due
on the wire, then briefly polling; the learned offset; timeouts as before. The real driver against the emulated bus
(simbus://, wire-time model), with a port subclass that only records when it was asked."""

import sys
import time

import pytest

import sim  # noqa: F401  (registers simbus://)
from hardware.feetech import BusTimeoutError
from hardware.feetech import protocol as proto
from hardware.feetech.bus import FeetechBus
from hardware.feetech.replies import ReplyWait
from sim.transport.protocol_simbus import Serial as SimBusSerial

IDS = [1, 2, 3, 4, 5, 6]
BAUD = 1_000_000
SYNC_READ_DUE = proto.wire_time(14 + 6 * 8, BAUD)  # Present_Position from six servos: 620 us
LAST_REPLY = proto.wire_time(8, BAUD)  # the last servo's status packet: 80 us


class RecordingPort(SimBusSerial):
    """The emulated bus's own port, noting when the driver asks how many bytes have arrived."""

    def __init__(self, url: str):
        self.looks: list[float] = []
        self.writes: list[float] = []
        super().__init__(url, baudrate=BAUD)

    @property
    def in_waiting(self) -> int:
        self.looks.append(time.monotonic())
        return super().in_waiting

    def write(self, data) -> int:
        n = super().write(data)
        self.writes.append(time.monotonic())
        return n


def test_the_driver_looks_once_then_sleeps_until_the_replies_are_due():
    port = RecordingPort("simbus://?ids=1-6&timing=wire")
    try:
        with FeetechBus(port, wait=ReplyWait(adapt=False)) as bus:
            for _ in range(20):
                port.looks.clear()
                before = len(port.writes)
                positions = bus.sync_read("Present_Position", IDS)
                assert sorted(positions) == IDS and all(0 <= p < 4096 for p in positions.values())
                sent = port.writes[before]
                early = [t for t in port.looks if t < sent + SYNC_READ_DUE]
                # the look right after the write (an instant bus has answered by then), and at most one more: the
                # early look for the first five replies, when they are in (the last is then still on the wire)
                assert 1 <= len(early) <= 2
                assert all(t >= sent + SYNC_READ_DUE - LAST_REPLY for t in early[1:])
                assert len(port.looks) >= 2  # and at least one after the sleep
    finally:
        port.close()


class ReadRecordingPort(RecordingPort):
    """Also notes how many bytes each read took."""

    def __init__(self, url: str):
        self.reads: list[int] = []
        super().__init__(url)

    def read(self, size: int = 1) -> bytes:
        data = super().read(size)
        self.reads.append(len(data))
        return data


def test_all_but_the_last_reply_are_read_in_an_early_look():
    # The last of six status packets takes its own wire time (here 30 data bytes: 360 us at 1 Mbaud): the driver
    # reads and decodes the first five before it is in, so that only the last is left to decode when it arrives.
    length = 30
    port = ReadRecordingPort("simbus://?ids=1-6&timing=wire")
    try:
        with FeetechBus(port, wait=ReplyWait(adapt=False)) as bus:
            split = 0
            for _ in range(20):
                port.reads.clear()
                data = bus.sync_read_bytes(IDS, 56, length)
                assert sorted(data) == IDS and all(len(d) == length for d in data.values())
                assert sum(port.reads) == 6 * (6 + length)
                nonempty = [n for n in port.reads if n]
                split += len(nonempty) >= 2 and nonempty[0] >= 5 * (6 + length)
            assert split >= 10  # (a sleep that overshot by the last packet's 360 us would find all six at once)
    finally:
        port.close()


def test_replies_already_there_are_taken_without_sleeping():
    port = RecordingPort("simbus://?ids=1-6")  # instant: the replies are in by the time write() returns
    try:
        with FeetechBus(port) as bus:
            for _ in range(10):
                port.looks.clear()
                bus.sync_read("Present_Position", IDS)
                assert len(port.looks) == 1
            assert bus.wait.offset_s == 0.0  # nothing slept, nothing learned
    finally:
        port.close()


def test_late_replies_move_the_wake_up_later_one_step_per_transaction():
    # Every reply 2 ms late (12 ms for six, as each holds back the ones behind it), as behind a USB adapter that
    # holds bytes back: the driver never finds them complete on waking (it wakes well before), so each transaction
    # moves the wake-up later by q steps (learned at the start of the next one, while its bytes are on the wire).
    port = serial_port("simbus://?ids=1-6&timing=wire&faults=late:1;late_ms:2")
    try:
        with FeetechBus(port, latency_s=0.05) as bus:
            wait = bus.wait
            for _ in range(12):
                bus.sync_read("Present_Position", IDS)
            step = 0.05 * SYNC_READ_DUE + 5e-6
            assert wait.offset_s == pytest.approx(11 * wait.oversleep * step, rel=1e-6)  # the 12th: at the next
            assert bus.stats.timeouts == 0 and bus.stats.retries == 0
    finally:
        port.close()


def serial_port(url: str):
    import serial

    return serial.serial_for_url(url, baudrate=BAUD)


def test_oversleeping_moves_the_wake_up_earlier_and_the_offset_stays_bounded():
    wait = ReplyWait(oversleep=0.25)
    wait.max_offset_s = 0.001
    sent, due = 10.0, 10.0 + SYNC_READ_DUE
    step = 0.05 * SYNC_READ_DUE + 5e-6
    wait.learn(sent, due, overslept=True)
    assert wait.offset_s == pytest.approx(-0.75 * step)
    wait.learn(sent, due, overslept=False)
    assert wait.offset_s == pytest.approx(-0.5 * step)
    for _ in range(1000):  # an instant device: never earlier than the write itself
        wait.learn(sent, due, overslept=True)
    assert wait.offset_s == pytest.approx(-SYNC_READ_DUE)
    assert wait.wake_at(sent, due) == pytest.approx(sent)
    for _ in range(10_000):  # a device that never answers in time: never later than the latency margin
        wait.learn(sent, due, overslept=False)
    assert wait.offset_s == pytest.approx(0.001)
    frozen = ReplyWait(adapt=False)
    frozen.learn(sent, due, overslept=True)
    assert frozen.offset_s == 0.0
    with pytest.raises(ValueError, match="oversleep"):
        ReplyWait(oversleep=1.0)


def test_a_missing_reply_times_out_after_the_same_timeout_and_teaches_nothing():
    port = serial_port("simbus://?ids=1-6&timing=wire")
    port.bus.unplug(6)  # the last: nothing after it tells the driver early that it is missing
    try:
        with FeetechBus(port, retries=0, latency_s=0.05) as bus:
            timeout = bus.timeout_for(14, 48, 6)
            t0 = time.monotonic()
            with pytest.raises(BusTimeoutError) as err:
                bus.sync_read("Present_Position", IDS)
            waited = time.monotonic() - t0
            assert err.value.servo_id == 6
            assert waited >= timeout  # the whole timeout, counted from the write
            assert bus.wait.offset_s == 0.0
            assert bus.stats.timeouts == 1
    finally:
        port.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux's")
def test_the_waiting_thread_sleeps_with_fine_timer_slack():
    import ctypes
    import threading

    libc = ctypes.CDLL(None, use_errno=True)
    pr_get_timerslack = 30
    seen = {}

    def worker():
        libc.prctl(29, ctypes.c_ulong(50_000), 0, 0, 0)  # PR_SET_TIMERSLACK: Linux's default (a new thread inherits)
        seen["before"] = libc.prctl(pr_get_timerslack, 0, 0, 0, 0)
        port = serial_port("simbus://?ids=1-6&timing=wire")
        try:
            with FeetechBus(port) as bus:
                bus.sync_read("Present_Position", IDS)  # sleeps until the replies are due
        finally:
            port.close()
        seen["after"] = libc.prctl(pr_get_timerslack, 0, 0, 0, 0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen["before"] == 50_000
    assert seen["after"] == 1_000
