"""Serving at raised priority (sim/realtime.py, PtyBusServer(realtime=True), RealTimeRunner(realtime=True)): the
threads get what the OS allows and say what they got, and the server answers as before."""

from __future__ import annotations

import os
import sys
import threading

import pytest

import sim  # noqa: F401  (registers simbus://)
from hardware.feetech.bus import FeetechBus
from sim.feetech import EmulatedServo, SimBus
from sim.realtime import (
    CPU_LATENCY_PATH,
    KWORKER_NICE,
    SWITCH_INTERVAL_S,
    CpuWakeLatency,
    KernelTtyPriority,
    _unbound_workers,
    raise_thread_priority,
    shorten_switch_interval,
)
from sim.transport.pty_server import PtyBusServer

POLICIES = {"SCHED_RR 1": os.SCHED_RR, "nice -10": os.SCHED_OTHER, "normal": os.SCHED_OTHER}


def _in_thread(fn):
    out = {}

    def run():
        out["got"] = fn()
        out["policy"] = os.sched_getscheduler(0)
        out["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out


def test_raise_thread_priority_changes_only_the_calling_thread():
    before = os.sched_getscheduler(0)
    out = _in_thread(raise_thread_priority)
    assert out["got"] in POLICIES
    assert out["policy"] == POLICIES[out["got"]]
    if out["got"] == "nice -10":
        assert out["nice"] == -10
    assert os.sched_getscheduler(0) == before  # the caller's thread is untouched


def test_switch_interval_is_shortened_never_lengthened():
    old = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        shorten_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S, rel=0.05)
        sys.setswitchinterval(0.0001)
        shorten_switch_interval()
        assert sys.getswitchinterval() == pytest.approx(0.0001, rel=0.05)  # stored in whole microseconds
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("realtime", [False, True])
def test_realtime_server_answers_and_reports_its_priority(realtime):
    old = sys.getswitchinterval()
    bus = SimBus([EmulatedServo(i) for i in (1, 2, 3)])
    try:
        with PtyBusServer(bus, realtime=realtime) as server, FeetechBus(server.path) as driver:
            assert server.thread_id is not None
            policy = os.sched_getscheduler(server.thread_id)
            if realtime:
                assert server.priority in POLICIES and policy == POLICIES[server.priority]
                assert sys.getswitchinterval() <= SWITCH_INTERVAL_S
            else:
                assert server.priority == "normal" and policy == os.SCHED_OTHER
            for _ in range(5):
                assert set(driver.sync_read("Present_Position", [1, 2, 3])) == {1, 2, 3}
            assert len(server.reply_lateness_s) >= 15  # one reply per servo per SYNC_READ, each timed
    finally:
        sys.setswitchinterval(old)


def test_realtime_runner_reports_its_priority():
    from sim.twin.physics import RealTimeRunner, World

    world = World()
    with RealTimeRunner(world, realtime=True) as runner:
        for _ in range(5000):  # the thread sets thread_id once its priority is final
            if runner.thread_id is not None:
                break
            threading.Event().wait(0.001)
        assert runner.priority in POLICIES
        assert os.sched_getscheduler(runner.thread_id) == POLICIES[runner.priority]


def _permitted() -> bool:
    return os.geteuid() == 0  # CI runs as root; CAP_SYS_NICE alone would do too


@pytest.mark.skipif(not _permitted(), reason="raising kernel threads needs root or CAP_SYS_NICE")
def test_kernel_tty_workers_are_raised_while_serving_and_put_back_by_the_last_one(tmp_path, monkeypatch):
    monkeypatch.setattr(KernelTtyPriority, "LOCK_PATH", str(tmp_path / "lock"))
    before = _unbound_workers()
    assert before, "no kworker/u* threads: is this Linux?"
    first = KernelTtyPriority().__enter__()
    second = KernelTtyPriority().__enter__()  # a follower and a leader served by two processes
    try:
        assert first.state == second.state == f"kworkers at nice {KWORKER_NICE}"
        raised = _unbound_workers()
        # every worker that was at nice 0 is raised (the kernel may start new ones meanwhile: the watcher's job)
        assert all(raised[pid] == KWORKER_NICE for pid, nice in before.items() if nice == 0 and pid in raised)
        assert first.changed == {pid for pid, nice in before.items() if nice == 0 and pid in raised}
        first.__exit__(None, None, None)
        still = _unbound_workers()
        assert all(still[pid] == KWORKER_NICE for pid in first.changed if pid in still)  # the leader still serves
    finally:
        second.__exit__(None, None, None)
    after = _unbound_workers()
    assert all(after[pid] == 0 for pid in first.changed if pid in after)  # the last one put them all back
    assert {pid: n for pid, n in after.items() if pid not in first.changed} == {
        pid: n for pid, n in before.items() if pid in after and pid not in first.changed
    }  # and touched nothing else
    assert list(tmp_path.iterdir()) == [tmp_path / "lock"]  # its records are gone


def _cpu_latency_target_us() -> int:
    """The kernel's current PM QoS CPU latency target (the smallest request in force; 2 s when there is none)."""
    fd = os.open(CPU_LATENCY_PATH, os.O_RDONLY)
    try:
        return int.from_bytes(os.read(fd, 4), sys.byteorder, signed=True)
    finally:
        os.close(fd)


@pytest.mark.skipif(not os.path.exists(CPU_LATENCY_PATH), reason="no PM QoS device (not Linux)")
def test_cpu_wake_latency_is_requested_while_serving_and_dropped_after():
    before = _cpu_latency_target_us()
    with CpuWakeLatency(0) as held:
        if os.geteuid() != 0:
            assert held.state == "not permitted"
            return
        assert held.state == "held at 0 us"
        assert _cpu_latency_target_us() == 0
    assert _cpu_latency_target_us() == before


def test_cpu_wake_latency_without_the_device_changes_nothing(monkeypatch):
    monkeypatch.setattr("sim.realtime.CPU_LATENCY_PATH", "/nonexistent/cpu_dma_latency")
    with CpuWakeLatency() as held:
        assert held.state == "not available"
