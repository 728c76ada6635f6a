"""BusProcess (sim/process/bus.py): the emulated bus on a pty, served by a child process, with a handle on it."""

import pytest

import sim  # noqa: F401  (registers simbus://)
from hardware.feetech.bus import FeetechBus
from sim.process.bus import BusProcess, ServoSpec


def test_a_driver_on_the_pty_and_the_handle_see_the_same_servos():
    with BusProcess([ServoSpec(1, 1000), ServoSpec(2, 3000, baudrate_code=1)], wire_time=True) as proc:
        assert proc.path.startswith("/dev/")
        assert proc.ids == [1, 2]
        assert proc.servo(2).baudrate == 500_000
        with FeetechBus(proc.path, latency_s=0.05) as bus:
            assert bus.sync_read("Present_Position", [1]) == {1: 1000}
            assert [f.id for f in bus.scan(range(1, 3), [1_000_000])] == [1]  # servo 2 listens at 500 kbaud
            bus.write(1, "Homing_Offset", -100)
        servo = proc.servo(1)
        assert servo.read_register("Homing_Offset") == -100
        assert servo.read_bytes(31, 2) == bytes([100, 0x08])  # sign-magnitude, sign in bit 11
        assert servo.flash[31:33] == bytes(2)  # Lock is 1 at power-on: not persisted
        proc.power_cycle()
        assert servo.read_register("Homing_Offset") == 0
        proc.unplug(1)
        assert not proc.is_plugged(1)
        with pytest.raises(RuntimeError, match="no emulated servo with id 9"):
            proc.servo(9).read_register("ID")
        with pytest.raises(RuntimeError, match="not available"):
            proc._request("bus", None, "add", [])
        child = proc._proc
    assert child.poll() is not None  # stopped: the child has exited
