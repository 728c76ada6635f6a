"""The port itself failing (a USB adapter unplugged) is the driver's typed error naming the port and the servo; a
reply that stays damaged through every retry names the servo."""

from __future__ import annotations

import os

import pytest
import serial

import sim  # noqa: F401  (registers simbus://)
from hardware.feetech.bus import FeetechBus
from hardware.feetech.errors import BusDisconnectedError, ChecksumError, FeetechError
from sim.feetech import EmulatedServo, SimBus, register_bus, unregister_bus
from sim.feetech.faults import FaultProfile


@pytest.fixture
def dead_port():
    """A pseudo-terminal whose other end (the device) went away."""
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 1_000_000, timeout=0.05)
    os.close(slave)
    os.close(master)
    yield port
    try:
        port.close()
    except Exception:
        pass


@pytest.mark.parametrize(
    ("call", "servo", "what"),
    [
        (lambda bus: bus.read(3, "Present_Position"), 3, "READ 2 byte(s) at 56"),
        (lambda bus: bus.sync_read("Present_Position", [1, 2]), 1, "SYNC_READ 2 byte(s) at 56"),
        (lambda bus: bus.sync_write("Torque_Enable", {1: 0, 2: 0}), 254, "SYNC_WRITE Torque_Enable"),
        (lambda bus: bus.broadcast_ping(), 254, "broadcast PING"),
    ],
)
def test_a_port_that_went_away_is_a_typed_error(dead_port, call, servo, what):
    bus = FeetechBus(dead_port, names={3: "elbow_flex"})
    bus.connect()
    with pytest.raises(BusDisconnectedError) as info:
        call(bus)
    err = info.value
    assert isinstance(err, FeetechError) and err.servo_id == servo and err.what == what
    assert str(err).startswith(f"lost the servo bus on {dead_port.port} during {what}")
    assert "plug it back in" in str(err)
    assert bus.stats.retries == 0  # not retried: nothing on this port can answer
    bus.disconnect()  # closing a dead port does not raise


def test_a_reply_damaged_through_every_retry_names_the_servo():
    """Every reply has one bit flipped (where it lands decides the error: a flip in the id or length byte reads as a
    missing reply); the checksum errors that come out of the retries say which servo and what to check."""
    register_bus("lost-checksum", SimBus([EmulatedServo(2)], faults=FaultProfile(corrupt=1.0, seed=3)))
    seen = []
    try:
        with FeetechBus("simbus://lost-checksum", retries=1, latency_s=0.005, names={2: "shoulder_lift"}) as bus:
            while len(seen) < 3:
                try:
                    bus.read(2, "Present_Position")
                except ChecksumError as exc:
                    seen.append(exc)
                except FeetechError:
                    pass  # a flip in the id or length byte
                assert bus.stats.transactions < 1000
    finally:
        unregister_bus("lost-checksum")
    for exc in seen:
        assert exc.servo_id == 2
        text = str(exc)
        assert text.startswith("no clean reply from servo 2 (shoulder_lift) to READ 2 byte(s) at 56 in 2 attempt(s)")
        assert "checksum mismatch" in text and "cable" in text
