"""The shutdown path: signals become ``Terminated`` in the main thread, a second signal does not cut torque off
short, and an arm that fails half-way through connecting is left with torque off."""

from __future__ import annotations

import os
import signal

import pytest

from robot.arm import Arm
from robot.arm_config import ArmConfig
from robot.safety import SafeArm
from robot.shutdown import Terminated, deferred_signals, terminate_on_signals
from tests.simarm import NAMES


def test_a_terminating_signal_raises_terminated_once():
    restore = terminate_on_signals()
    try:
        with pytest.raises(Terminated) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # a point where the handler has run
        assert info.value.signum == signal.SIGTERM and info.value.exit_code == 143
        assert str(info.value) == "stopped by SIGTERM"
        os.kill(os.getpid(), signal.SIGHUP)  # while the first unwinds: ignored, not a second exception
        signal.sigtimedwait([], 0)
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_signals_wait_for_the_end_of_a_deferred_block():
    restore = terminate_on_signals()
    done = []
    try:
        with pytest.raises(Terminated):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGQUIT)
                signal.sigtimedwait([], 0)
                done.append("torque off")  # still runs: the signal waits
        assert done == ["torque off"]
    finally:
        restore()


def test_a_connect_cut_short_after_torque_on_turns_it_off(sim_arm, tmp_path, monkeypatch):
    """A signal (or any error) after configure() turned torque on: connect() turns it off again and closes."""
    cfg = ArmConfig("so101_follower", sim_arm.url, "my_arm", calibration_dir=tmp_path)
    sim_arm.install_calibration(cfg.calibration_path)
    sim_arm.to_middle()
    configure = Arm.configure

    def configure_then_signal(self):
        configure(self)
        assert all(sim_arm.reg(n, "Torque_Enable") == 1 for n in NAMES)
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(Arm, "configure", configure_then_signal)
    arm = Arm(cfg)
    with pytest.raises(Terminated):
        arm.connect()
    assert all(sim_arm.reg(n, "Torque_Enable") == 0 for n in NAMES)
    assert not arm.is_connected


def test_terminated_inside_a_session_ends_with_torque_off(sim_arm, tmp_path):
    """The exception a signal raises is not an Exception, yet SafeArm and Arm turn torque off on its way out."""
    cfg = ArmConfig("so101_follower", sim_arm.url, "my_arm", calibration_dir=tmp_path)
    sim_arm.install_calibration(cfg.calibration_path)
    sim_arm.to_middle()
    with pytest.raises(Terminated):
        with Arm(cfg) as arm, SafeArm(arm, _Clock()) as safe:
            safe.check()
            assert all(sim_arm.reg(n, "Torque_Enable") == 1 for n in NAMES)
            raise Terminated(signal.SIGHUP)
    assert all(sim_arm.reg(n, "Torque_Enable") == 0 for n in NAMES)


class _Clock:
    t = 0.0

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)
