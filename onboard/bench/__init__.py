"""`onboard bench ...`: does this machine keep up? The servo bus (bus), the control loop (loop), the simulated twin
(sim), policy inference (policy), each reporting medians, tails and ratios to the physical limit; sysinfo describes the
machine in every report."""
