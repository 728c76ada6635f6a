"""The emulated bus behind real serial ports: the simbus:// pyserial URL handler and the pty server."""

import importlib
import os
import time

import pytest
import serial

import sim
from hardware.feetech import protocol as P
from hardware.feetech.protocol import BROADCAST_ID, PacketDecoder, StatusPacket
from sim.feetech import FaultProfile, SimBus
from sim.feetech.bus import get_bus, register_bus, unregister_bus
from sim.feetech.motor import SimpleMotor
from sim.feetech.servo import EmulatedServo
from sim.transport import protocol_simbus
from sim.transport.pty_server import MAX_DELIVERY_S, PtyBusServer

MBAUD = 1_000_000


def transact(port, request: bytes, n_replies: int = 1, data_len: int = 0) -> list[StatusPacket]:
    port.reset_input_buffer()
    port.write(request)
    raw = port.read(n_replies * (6 + data_len))
    return [p for p in PacketDecoder("status").feed(raw) if isinstance(p, StatusPacket)]


class SteppedClock:
    """Stands in for the ``time`` module of the simbus port (its ``time.monotonic``): time moves only when the test
    sets ``t``. Use it with ``timeout=0`` reads (a blocking read would wait for a time that never comes)."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def stepped(monkeypatch):
    clock = SteppedClock()
    monkeypatch.setattr(protocol_simbus, "time", clock)
    return clock


def silent(port, request: bytes, wait_s: float = 0.1) -> bool:
    """Nobody answers ``request`` within ``wait_s``. A reply is waited for as long as the port's timeout (long: a
    reply ends the read as soon as it is complete), silence only this long."""
    timeout = port.timeout
    port.timeout = wait_s
    try:
        return transact(port, request) == []
    finally:
        port.timeout = timeout


@pytest.fixture
def named():
    names = []

    def make(name, bus):
        names.append(name)
        return register_bus(name, bus)

    yield make
    for n in names:
        unregister_bus(n)


# --- simbus:// ------------------------------------------------------------------------------------------------------
def test_import_registers_the_handler_once():
    importlib.reload(sim)
    importlib.reload(sim)
    assert serial.protocol_handler_packages.count("sim.transport") == 1


def test_simbus_ping_read_and_write_examples():
    port = serial.serial_for_url("simbus://", baudrate=MBAUD, timeout=0.5)
    try:
        assert sorted(port.bus.servos) == [1, 2, 3, 4, 5, 6]
        port.write(bytes.fromhex("FF FF 01 02 01 FB"))
        assert port.read(6) == bytes.fromhex("FF FF 01 02 00 FC")
        port.bus.servo(1).plant.move_to(1304)
        port.write(bytes.fromhex("FF FF 01 04 02 38 02 BE"))
        assert port.read(8) == bytes.fromhex("FF FF 01 04 00 18 05 DD")
        port.write(bytes.fromhex("FF FF 01 09 03 2A 00 08 00 00 E8 03 D5"))
        assert port.read(6) == bytes.fromhex("FF FF 01 02 00 FC")
        port.write(bytes.fromhex("FF FF FE 04 03 05 01 F4"))  # broadcast: no reply
        port.timeout = 0.05
        assert port.read(1) == b""
    finally:
        port.close()


def test_simbus_instant_timing_replies_are_there_when_write_returns():
    port = serial.serial_for_url("simbus://?ids=1-3", baudrate=MBAUD, timeout=0)
    port.write(P.sync_read([1, 2, 3], 56, 2))
    assert port.in_waiting == 24
    assert len(port.read(100)) == 24  # non-blocking: what is there
    assert port.read(1) == b""
    port.close()


def test_simbus_wire_timing_delivers_bytes_at_their_wire_time(named, stepped):
    """Each reply byte arrives when the wire-time model says: the request on the wire, then per servo its return
    delay and its 106 bytes (10 bits each at 38400 baud, 85 ms for the three). On a clock the test steps (the port's
    and the bus's), so how long the test thread is descheduled cannot blur it."""
    bus = named("test-wire", SimBus([EmulatedServo(i, baudrate_code=7) for i in (1, 2, 3)], clock=stepped.monotonic))
    port = serial.serial_for_url("simbus://test-wire?timing=wire", baudrate=38_400, timeout=0)
    assert port.timing == "wire"
    byte = 10 / 38_400
    request = P.sync_read([1, 2, 3], 0, 100)
    t0 = stepped.t
    port.write(request)
    got = port.read(1000)
    assert got == b""  # the request itself is still on the wire
    end = t0 + len(request) * byte
    for k, servo_id in enumerate((1, 2, 3), start=1):
        end += bus.servo(servo_id).return_delay_s + 106 * byte  # this reply's last byte
        stepped.t = end - byte / 2
        got += port.read(1000)
        assert len(got) == 106 * k - 1  # all but the last byte of this reply
        stepped.t = end + byte / 100
        got += port.read(1000)
        assert len(got) == 106 * k
    assert [p.id for p in PacketDecoder("status").feed(got)] == [1, 2, 3]
    port.close()


def test_simbus_wrong_baud_finds_nobody_and_changing_baudrate_works():
    port = serial.serial_for_url("simbus://?ids=1", baudrate=500_000, timeout=0.05)
    assert transact(port, P.ping(1)) == []
    port.baudrate = MBAUD
    assert [p.id for p in transact(port, P.ping(1))] == [1]
    port.close()


def test_simbus_named_bus_is_shared_between_openers(named):
    named("test-shared", SimBus(ids=[1, 2]))
    a = serial.serial_for_url("simbus://test-shared", baudrate=MBAUD, timeout=0.2)
    b = serial.serial_for_url("simbus://test-shared?timing=wire", baudrate=MBAUD, timeout=0.2)
    assert a.bus is b.bus is get_bus("test-shared")
    transact(a, P.write(2, 5, bytes([9])))  # set id 2 -> 9 through one opener
    assert [p.id for p in transact(b, P.ping(9))] == [9]
    a.close()
    b.close()


def test_simbus_new_name_creates_and_registers_the_bus():
    try:
        port = serial.serial_for_url("simbus://test-created?ids=4-5", baudrate=MBAUD, timeout=0.2)
        assert get_bus("test-created") is port.bus
        assert sorted(port.bus.servos) == [4, 5]
        port.close()
        port.open()  # reopening: same bus
        assert get_bus("test-created") is port.bus
        port.close()
    finally:
        unregister_bus("test-created")


def test_simbus_private_bus_survives_reopen():
    port = serial.serial_for_url("simbus://?ids=1", baudrate=MBAUD, timeout=0.2)
    bus = port.bus
    port.close()
    port.open()
    assert port.bus is bus
    port.close()


def test_simbus_url_faults_and_seed():
    port = serial.serial_for_url(
        "simbus://?ids=1-3&faults=unplugged:2;low_voltage:3;late:0.5&seed=7", baudrate=MBAUD, timeout=0.2
    )
    f = port.bus.faults
    assert f == FaultProfile(unplugged={2}, low_voltage={3}, late=0.5, seed=7)
    packets = transact(port, P.sync_read([1, 2, 3], 56, 2), 2, 2)
    assert [(p.id, p.error) for p in packets] == [(1, 0), (3, 0x01)]
    port.close()
    plus = serial.serial_for_url("simbus://?ids=1-4&faults=unplugged:2+4", baudrate=MBAUD)
    assert plus.bus.faults.unplugged == {2, 4}  # '+' arrives as a space: accepted
    plus.close()


def test_simbus_dropped_reply_times_out_without_burning_a_core():
    port = serial.serial_for_url("simbus://?ids=1&faults=drop:1", baudrate=MBAUD, timeout=0.2)
    wall, cpu = time.monotonic(), time.process_time()
    port.write(P.ping(1))
    assert port.read(6) == b""
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    assert wall >= 0.19
    assert cpu < 0.5 * wall
    assert port.bus.fault_counts["drop"] == 1
    port.close()


def test_simbus_late_reply_survives_an_input_flush(stepped):
    port = serial.serial_for_url("simbus://?ids=1&faults=late:1;late_ms:200", baudrate=MBAUD, timeout=0)
    port.write(P.ping(1))
    stepped.t += 0.199
    assert port.read(6) == b""  # not yet
    port.reset_input_buffer()  # only what has arrived is discarded
    stepped.t += 0.002
    assert port.read(6) == bytes.fromhex("FF FF 01 02 00 FC")
    port.close()


def test_simbus_bad_urls_explain_themselves():
    with pytest.raises(serial.SerialException, match="unknown simbus:// option"):
        serial.serial_for_url("simbus://?idz=1")
    with pytest.raises(serial.SerialException, match="timing"):
        serial.serial_for_url("simbus://?timing=fast")
    with pytest.raises(serial.SerialException, match="bad simbus"):
        serial.serial_for_url("simbus://?faults=drop:7")


def test_simbus_closed_port_refuses_io():
    port = serial.serial_for_url("simbus://", baudrate=MBAUD)
    port.close()
    with pytest.raises(serial.PortNotOpenError):
        port.write(P.ping(1))
    with pytest.raises(serial.PortNotOpenError):
        port.read(1)


def test_simbus_sync_read_through_the_port_follows_the_goal():
    port = serial.serial_for_url("simbus://?ids=1-6", baudrate=MBAUD, timeout=0.2)
    bus = port.bus
    for i, s in bus.servos.items():
        s.plant.move_to(1000 + i)
    bus.advance(bus.clock())
    packets = transact(port, P.sync_read([6, 5, 4, 3, 2, 1], 56, 2), 6, 2)
    assert [(p.id, int.from_bytes(p.params, "little")) for p in packets] == [(i, 1000 + i) for i in (6, 5, 4, 3, 2, 1)]
    port.close()


# --- pty ------------------------------------------------------------------------------------------------------------
def test_pty_server_with_plain_pyserial():
    bus = SimBus([EmulatedServo(1, plant=SimpleMotor(position=1304)), EmulatedServo(2)])
    with PtyBusServer(bus) as server:
        assert server.path.startswith("/dev/pts/")
        with serial.Serial(server.path, MBAUD, timeout=5.0) as port:
            port.write(bytes.fromhex("FF FF 01 02 01 FB"))
            assert port.read(6) == bytes.fromhex("FF FF 01 02 00 FC")
            port.write(bytes.fromhex("FF FF 01 04 02 38 02 BE"))
            assert port.read(8) == bytes.fromhex("FF FF 01 04 00 18 05 DD")
            packets = transact(port, P.sync_read([2, 1], 56, 2), 2, 2)
            assert [p.id for p in packets] == [2, 1]
            port.write(P.write(BROADCAST_ID, 41, bytes([100])))
            port.timeout = 0.05
            assert port.read(1) == b""
            assert bus.servo(2).read_register("Acceleration") == 100
    assert not server.running


def test_pty_server_measures_its_delivery_latency_and_leaves_no_probe_bytes():
    # with wire timing the server measures how late it sees a write (before any client can open the pty) and counts
    # the wire time from the estimated write; the probe's bytes never reach a client
    with PtyBusServer(SimBus(ids=[1])) as server:
        assert 0 < server.delivery_s <= MAX_DELIVERY_S
        with serial.Serial(server.path, MBAUD, timeout=0.05) as port:
            assert port.read(64) == b""
            assert [p.id for p in transact(port, P.ping(1))] == [1]
    with PtyBusServer(SimBus(ids=[1]), wire_time=False) as server:
        assert server.delivery_s == 0.0  # at once: nothing to count from


def test_pty_baud_mismatch_is_silent_and_baud_changes_work():
    bus = SimBus([EmulatedServo(1), EmulatedServo(7, baudrate_code=3)])  # 1 Mbaud and 128000 (non-standard)
    with PtyBusServer(bus, wire_time=False) as server, serial.Serial(server.path, 500_000, timeout=5.0) as port:
        assert silent(port, P.ping(1))
        port.baudrate = MBAUD
        assert [p.id for p in transact(port, P.ping(BROADCAST_ID))] == [1]
        port.baudrate = 128_000
        assert server.line_baud == 128_000  # a non-standard rate, read back with TCGETS2
        assert [p.id for p in transact(port, P.ping(7))] == [7]
        # move servo 7 to 1 Mbaud: it answers at the old rate, then only at the new one
        assert [p.id for p in transact(port, P.write(7, 6, bytes([0])))] == [7]
        assert silent(port, P.ping(7))
        port.baudrate = MBAUD
        assert [p.id for p in transact(port, P.ping(BROADCAST_ID), 2)] == [1, 7]


def test_pty_server_stop_closes_everything():
    server = PtyBusServer(SimBus(ids=[1]))
    path = server.start()
    assert server.running
    server.stop()
    assert not server.running
    server.stop()  # idempotent
    assert not os.path.exists(path)  # both ends closed: the pty is gone


def test_simbus_instant_timing_keeps_wire_order_behind_a_late_reply(named):
    bus = named("test-late-order", SimBus(ids=[1, 2], faults=FaultProfile(late=0.5, late_s=0.1, seed=0)))
    port = serial.serial_for_url("simbus://test-late-order", baudrate=MBAUD, timeout=1.0)
    for _ in range(10):
        before = bus.fault_counts["late"]
        packets = transact(port, P.sync_read([1, 2], 56, 2), 2, 2)
        assert [p.id for p in packets] == [1, 2]  # never reordered, however many replies came late
        if bus.fault_counts["late"] > before:
            break
    assert bus.fault_counts["late"] > 0
    port.close()
