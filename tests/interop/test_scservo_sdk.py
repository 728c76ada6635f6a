"""Feetech's own Python SDK (PyPI ``feetech-servo-sdk`` 1.0.0, module ``scservo_sdk``), unmodified, against the
STS3215 emulator served on a pseudo-terminal with the wire-time model on.

The SDK opens the device path with ``serial.Serial`` (it cannot open URL schemes), so these tests go through
``PtyBusServer``: the same bytes a USB-serial adapter would carry. What passes here is what the vendor's code
accepts: its header resync, its checksum, its length and error-byte checks, its little-endian words
(``PacketHandler(0)``), its timeouts, its baud-rate switching. The server runs in a child process
(``sim.process.bus.BusProcess``), as a real bus is a separate device; ``sim_bus`` is a handle on its servos.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import require

pytestmark = pytest.mark.interop

IDS = [1, 2, 3, 4, 5, 6]
# Distinct horn positions (plant frame, steps) so that every servo's reading is its own.
START = {1: 1000, 2: 1500, 3: 2048, 4: 2600, 5: 3100, 6: 3900}
ADDR_MODEL, ADDR_FW_MAJOR, ADDR_FW_MINOR = 3, 0, 1
ADDR_P, ADDR_MAX_TORQUE, ADDR_TORQUE_ENABLE = 21, 16, 40
ADDR_GOAL, ADDR_ASYNC_FLAG, ADDR_PRESENT = 42, 64, 56


@pytest.fixture(scope="module")
def scs():
    return require("scservo_sdk", "interop")


def emulated_bus(baud_codes: dict[int, int] | None = None):
    """The emulated servos on a pty (``PtyBusServer``, wire time on) in a separate process: the SDK busy-polls
    while it waits (holding the GIL), which on a loaded machine starves a server thread of this process past the
    SDK's ~34 ms reply timeout, where a real bus would have answered."""
    from sim.process.bus import BusProcess, ServoSpec

    codes = baud_codes or dict.fromkeys(IDS, 0)
    return BusProcess([ServoSpec(i, START.get(i, 2048), c) for i, c in codes.items()], wire_time=True)


@pytest.fixture
def sim_bus():
    with emulated_bus() as proc:
        yield proc


@pytest.fixture
def sdk(scs, sim_bus):
    """(port handler, packet handler) of the vendor SDK, opened on the pty at 1 Mbaud."""
    port = scs.PortHandler(sim_bus.path)
    assert port.openPort()
    assert port.setBaudRate(1_000_000)
    try:
        yield port, scs.PacketHandler(0)
    finally:
        port.closePort()


def poll(fn, done, timeout_s: float = 3.0):
    """Call ``fn`` until ``done(value)``; the emulated motors advance on each request by wall-clock time."""
    deadline = time.monotonic() + timeout_s
    value = fn()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = fn()
    return value


def retried(scs, port, transaction, comm=lambda result: result, attempts: int = 3):
    """Run ``transaction()``, again after a reply timeout; ``comm(result)`` is its COMM code.

    The SDK gives the replies ~34 ms of wall-clock time from its request. The VM these tests run on is sometimes
    paused by its host for longer than that (steal time, in /proc/stat; CI once saw a sync read in a polling loop
    time out): both processes stop, and the SDK may look at the clock before the emulator has run. A driver on a
    real bus retries a timed-out read (LeRobot does); so do these polling loops, after discarding any reply that came
    in late so that the next transaction starts in step. Only timeouts are retried: a corrupt or wrong reply still
    fails the test. Every transaction that expects a reply goes through it, pings included."""
    for _ in range(attempts):
        result = transaction()
        if comm(result) != scs.COMM_RX_TIMEOUT:
            return result
        time.sleep(0.05)
        port.ser.reset_input_buffer()
    return result


def read_retried(scs, port, call, *args):
    """A ping or a read (``call(port, *args) -> (value, comm, error)``), again after a reply timeout."""
    return retried(scs, port, lambda: call(port, *args), lambda result: result[1])


def write_retried(scs, port, call, *args):
    """A write that gets a status reply (``-> (comm, error)``), again after a reply timeout: writes are idempotent."""
    return retried(scs, port, lambda: call(port, *args), lambda result: result[0])


def test_ping_reports_the_sts3215_model_number(scs, sdk):
    port, ph = sdk
    for i in IDS:
        model, comm, error = read_retried(scs, port, ph.ping, i)
        assert (model, comm, error) == (777, scs.COMM_SUCCESS, 0), ph.getTxRxResult(comm)
    model, comm, _ = read_retried(scs, port, ph.ping, 7)  # nobody there: the SDK times out
    assert comm == scs.COMM_RX_TIMEOUT and model == 0


def test_read_and_write_real_registers(scs, sdk, sim_bus):
    port, ph = sdk
    assert read_retried(scs, port, ph.read1ByteTxRx, 3, ADDR_FW_MAJOR) == (3, scs.COMM_SUCCESS, 0)
    assert read_retried(scs, port, ph.read1ByteTxRx, 3, ADDR_FW_MINOR) == (6, scs.COMM_SUCCESS, 0)
    assert read_retried(scs, port, ph.read2ByteTxRx, 3, ADDR_MODEL) == (777, scs.COMM_SUCCESS, 0)
    assert read_retried(scs, port, ph.read2ByteTxRx, 4, ADDR_PRESENT) == (START[4], scs.COMM_SUCCESS, 0)

    assert write_retried(scs, port, ph.write1ByteTxRx, 2, ADDR_P, 16) == (scs.COMM_SUCCESS, 0)
    assert read_retried(scs, port, ph.read1ByteTxRx, 2, ADDR_P) == (16, scs.COMM_SUCCESS, 0)
    assert sim_bus.servo(2).read_register("P_Coefficient") == 16
    assert sim_bus.servo(1).read_register("P_Coefficient") == 32  # only servo 2 was addressed

    assert write_retried(scs, port, ph.write2ByteTxRx, 2, ADDR_MAX_TORQUE, 500) == (scs.COMM_SUCCESS, 0)
    assert read_retried(scs, port, ph.read2ByteTxRx, 2, ADDR_MAX_TORQUE) == (500, scs.COMM_SUCCESS, 0)
    assert sim_bus.servo(2).read_register("Max_Torque_Limit") == 500


def test_goal_position_moves_the_servo_there(scs, sdk, sim_bus):
    port, ph = sdk
    assert write_retried(scs, port, ph.write1ByteTxRx, 1, ADDR_TORQUE_ENABLE, 1) == (scs.COMM_SUCCESS, 0)
    assert write_retried(scs, port, ph.write2ByteTxRx, 1, ADDR_GOAL, 1600) == (scs.COMM_SUCCESS, 0)
    assert sim_bus.servo(1).read_register("Goal_Position") == 1600

    def present():
        value, comm, error = read_retried(scs, port, ph.read2ByteTxRx, 1, ADDR_PRESENT)
        assert (comm, error) == (scs.COMM_SUCCESS, 0), ph.getTxRxResult(comm)
        return scs.SCS_TOHOST(value, 15)

    final = poll(present, lambda p: abs(p - 1600) <= 3)
    assert abs(final - 1600) <= 3, f"servo 1 stopped at {final}, goal 1600 (started at {START[1]})"
    assert sim_bus.servo(1).read_register("Torque_Enable") == 1


def test_group_sync_read_present_position_of_six_servos(scs, sdk, sim_bus):
    port, ph = sdk
    reader = scs.GroupSyncRead(port, ph, ADDR_PRESENT, 2)
    for i in IDS:
        assert reader.addParam(i)
    for _ in range(3):  # repeated sync reads on one port stay in step (no stale bytes between them)
        assert retried(scs, port, reader.txRxPacket) == scs.COMM_SUCCESS
        for i in IDS:
            assert reader.isAvailable(i, ADDR_PRESENT, 2)
            assert reader.getData(i, ADDR_PRESENT, 2) == START[i] == sim_bus.servo(i).read_register("Present_Position")


def test_group_sync_write_goal_position_moves_all_servos(scs, sdk, sim_bus):
    port, ph = sdk
    goals = {1: 1100, 2: 1400, 3: 2148, 4: 2500, 5: 3000, 6: 3800}
    for i in IDS:
        assert write_retried(scs, port, ph.write1ByteTxRx, i, ADDR_TORQUE_ENABLE, 1) == (scs.COMM_SUCCESS, 0)
    writer = scs.GroupSyncWrite(port, ph, ADDR_GOAL, 2)
    for i, g in goals.items():
        assert writer.addParam(i, [scs.SCS_LOBYTE(g), scs.SCS_HIBYTE(g)])
    assert writer.txPacket() == scs.COMM_SUCCESS  # broadcast: no reply expected

    reader = scs.GroupSyncRead(port, ph, ADDR_PRESENT, 2)
    for i in IDS:
        reader.addParam(i)

    def positions():
        assert retried(scs, port, reader.txRxPacket) == scs.COMM_SUCCESS
        return {i: reader.getData(i, ADDR_PRESENT, 2) for i in IDS}

    final = poll(positions, lambda ps: all(abs(ps[i] - goals[i]) <= 3 for i in IDS))
    assert all(abs(final[i] - goals[i]) <= 3 for i in IDS), final
    assert {i: sim_bus.servo(i).read_register("Goal_Position") for i in IDS} == goals


def test_reg_write_waits_for_action(scs, sdk, sim_bus):
    port, ph = sdk
    before = sim_bus.servo(2).read_register("Goal_Position")
    goal = [0x34, 0x08]  # 0x0834 = 2100
    assert write_retried(scs, port, ph.regWriteTxRx, 2, ADDR_GOAL, 2, goal) == (scs.COMM_SUCCESS, 0)
    assert read_retried(scs, port, ph.read1ByteTxRx, 2, ADDR_ASYNC_FLAG) == (1, scs.COMM_SUCCESS, 0)
    assert sim_bus.servo(2).read_register("Goal_Position") == before
    assert ph.action(port, scs.BROADCAST_ID) == scs.COMM_SUCCESS
    assert read_retried(scs, port, ph.read2ByteTxRx, 2, ADDR_GOAL) == (2100, scs.COMM_SUCCESS, 0)
    assert read_retried(scs, port, ph.read1ByteTxRx, 2, ADDR_ASYNC_FLAG) == (0, scs.COMM_SUCCESS, 0)


def test_wrong_baud_rate_finds_nothing(scs):
    """Each servo answers only at its own rate: the SDK reconfigures the pty and the emulator reads the line baud
    from the pty's termios, as a UART would decode only frames at its rate."""
    # servo 1 at 1 Mbaud (code 0), servo 2 at 500 kbaud (code 1), servo 3 at 115200 (code 4)
    with emulated_bus({1: 0, 2: 1, 3: 4}) as srv:
        port = scs.PortHandler(srv.path)
        assert port.openPort()
        ph = scs.PacketHandler(0)
        try:
            found = {}
            for baud in (1_000_000, 500_000, 115_200, 57_600):
                assert port.setBaudRate(baud)
                found[baud] = [i for i in (1, 2, 3) if read_retried(scs, port, ph.ping, i)[1] == scs.COMM_SUCCESS]
        finally:
            port.closePort()
    assert found == {1_000_000: [1], 500_000: [2], 115_200: [3], 57_600: []}
