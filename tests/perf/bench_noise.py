"""The noise meter's own cost: under 0.5 % of one core (target).

    .venv/bin/python -m tests.perf.bench_noise [--seconds 10] [--turns 200]

Two parts, both in CPU seconds of this process (user + system, all threads):
- the sampler: one window kept open for ``--seconds`` while this process only sleeps, minus the same
  sleep without a window (the sampler wakes every SAMPLE_S to read the cpufreq files; where the kernel
  has none, as on many VMs, it does not run at all: then both cost the same);
- start + stop: ``--turns`` windows opened and closed at once (what each turn adds: /proc/stat, the
  measured processes' /proc/PID/stat, the cpufreq files, /proc/loadavg), as a share of a core for turns
  of 1 s (an interleaved level of short requests; longer turns cost proportionally less).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from core.bench.conditions.noise import NoiseMeter, SAMPLE_S, own_pids, read_freq_mhz


def cpu() -> float:
    return time.process_time()   # CLOCK_PROCESS_CPUTIME_ID: nanoseconds, not 10 ms ticks


def fake_cpufreq() -> str:
    """A sysfs-shaped folder with a scaling_cur_freq per CPU of this machine (for one without cpufreq)."""
    root = tempfile.mkdtemp(prefix="noise-sysfs-")
    for i in range(os.cpu_count() or 1):
        d = os.path.join(root, f"devices/system/cpu/cpu{i}/cpufreq")
        os.makedirs(d)
        with open(os.path.join(d, "scaling_cur_freq"), "w") as f:
            f.write("2400000\n")
    return root


def sampler_share(meter: NoiseMeter, pids: list[int], seconds: float) -> float:
    c0 = cpu()
    time.sleep(seconds)
    idle = cpu() - c0
    c0 = cpu()
    w = meter.start(pids)
    time.sleep(seconds)
    meter.stop(w)
    return max(0.0, cpu() - c0 - idle) / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--turns", type=int, default=200)
    a = ap.parse_args()
    pids = own_pids()
    sys_root = "/sys" if read_freq_mhz() is not None else fake_cpufreq()
    meter = NoiseMeter(sys_root=sys_root)
    share = sampler_share(meter, pids, a.seconds)
    c0 = cpu()
    for _ in range(a.turns):
        meter.stop(meter.start(pids))
    per_turn = (cpu() - c0) / a.turns
    freq = "this machine's cpufreq" if sys_root == "/sys" else f"no cpufreq here: {os.cpu_count()} files in {sys_root}"
    print(f"sampler ({freq}; every {SAMPLE_S} s): {share:.4%} of a core over {a.seconds:.0f} s")
    print(f"start + stop: {per_turn * 1e3:.3f} ms CPU per turn ({len(pids)} measured processes) = "
          f"{per_turn:.4%} of a core for 1 s turns")
    total = share + per_turn
    print(f"noise meter total: {total:.4%} of a core (target: under 0.5%)")
    if sys_root != "/sys":
        shutil.rmtree(sys_root, ignore_errors=True)


if __name__ == "__main__":
    main()
