"""`onboard demo` for now: the real Feetech driver drives six emulated STS3215 servos over the simulated bus.

It does what bringing up an arm does: scan the bus, check model and firmware, configure the servos the way LeRobot
configures an SO-101 follower, enable torque, follow a trajectory at 50 Hz with SYNC_WRITE goals and SYNC_READ
positions, then read through a noisy bus (2 % corrupted replies) to show the retries. The bus runs with the wire-time
model on (1 Mbaud), so round trips are what a real bus would take.
"""

from __future__ import annotations

import math
import statistics
import time

import serial

from hardware.feetech.bus import FeetechBus
from sim.feetech import FaultProfile

IDS = [1, 2, 3, 4, 5, 6]
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_demo(seconds: float = 3.0, rate_hz: float = 50.0, out=print) -> int:
    port = serial.serial_for_url("simbus://?ids=1-6&timing=wire", baudrate=1_000_000)
    sim_bus = port.bus
    with FeetechBus(port, names=dict(zip(IDS, NAMES, strict=True))) as bus:
        out("onboard demo: the Feetech driver against six emulated STS3215 servos (simbus://, 1 Mbaud wire timing)")
        found = bus.scan(range(0, 10), [1_000_000])
        out(f"scan: {len(found)} servos: " + ", ".join(f"id {f.id} {f.model} fw {f.firmware}" for f in found))

        # configure like LeRobot's SO-101 follower (hardware.md §3): torque off + unlock, then the settings
        for i in IDS:
            bus.unlock_eeprom(i)
            bus.write(i, "Return_Delay_Time", 0)
            bus.write(i, "Acceleration", 254)
            bus.write(i, "P_Coefficient", 16)
            bus.write(i, "I_Coefficient", 0)
            bus.write(i, "D_Coefficient", 32)
            bus.write(i, "Torque_Enable", 1)
            bus.lock_eeprom(i)
        start = bus.sync_read("Present_Position", IDS)
        out("configured (P=16 I=0 D=32, acceleration 254, return delay 0); torque on; start positions " + str(start))

        period = 1.0 / rate_hz
        t0 = time.monotonic()
        n_ticks = int(seconds * rate_hz)
        read_us: list[float] = []
        errors: list[float] = []
        out(f"following a sine trajectory for {seconds:.1f} s at {rate_hz:.0f} Hz (goal -> present, steps):")
        for k in range(n_ticks):
            t = k * period
            goals = {i: int(2048 + 300 * math.sin(2 * math.pi * 0.5 * t + j)) for j, i in enumerate(IDS)}
            bus.sync_write("Goal_Position", goals)
            a = time.perf_counter()
            present = bus.sync_read("Present_Position", IDS)
            read_us.append((time.perf_counter() - a) * 1e6)
            if k >= min(rate_hz / 2, n_ticks // 2):
                errors.extend(abs(goals[i] - present[i]) for i in IDS)
            if k % int(rate_hz / 2) == 0:
                out(f"  t={t:4.1f}s  " + "  ".join(f"{goals[i]:4d}->{present[i]:4d}" for i in IDS))
            deadline = t0 + (k + 1) * period  # absolute deadlines: no drift
            time.sleep(max(0.0, deadline - time.monotonic()))
        out(
            f"tracking error after the first 0.5 s: median {statistics.median(errors):.0f} steps "
            f"({statistics.median(errors) * 360 / 4096:.1f} deg), the servos lag the moving goal"
        )
        wire_us = (14 + 6 * 8) * 10.0
        out(
            f"6-servo SYNC_READ round trip: median {statistics.median(read_us):.0f} us, "
            f"p99 {_pct(read_us, 0.99):.0f} us "
            f"(wire-time limit at 1 Mbaud: {wire_us:.0f} us)"
        )

        sim_bus.faults = FaultProfile(corrupt=0.02, seed=7)
        bus.stats.reset()
        n = 300
        for _ in range(n):
            bus.sync_read("Present_Position", IDS)
        s = bus.stats
        out(
            f"noisy bus (2 % of replies corrupted): {n}/{n} sync reads succeeded; {s.retries} retries "
            f"({s.checksum_errors} checksum errors, {s.timeouts} timeouts)"
        )
        sim_bus.faults = FaultProfile()
        for i in IDS:
            bus.write(i, "Torque_Enable", 0)
        out("torque off. Next: `onboard bus scan --port sim`, `onboard sim serve-bus`, `onboard bench bus`.")
    return 0
