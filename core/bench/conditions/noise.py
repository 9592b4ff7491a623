"""The noise meter: what else used the machine while a level was measured.

Over each measured window (a turn: one model's requests of one round, or of the whole level when blocked)
it reads, at the window's start and end only:
- ``/proc/stat``: the CPU time every program used (user + nice + system + irq + softirq) and the steal
  time (a VM's CPU taken by the hypervisor);
- ``/proc/PID/stat`` of the processes that are the measurement itself (the model's process(es) and the
  app's own): their CPU is subtracted, the rest is **other programs**;
- ``/proc/loadavg`` (1-minute load average) at the end;
and, at a low rate from one sleeping thread (``SAMPLE_S``), the CPU frequency: the median over CPUs of
``scaling_cur_freq``. No cpufreq files (many VMs): the frequency is unknown, never a guess.

A level is **noisy** when other programs used more than ``NOISY_SHARE`` of the machine, or when the CPU
frequency's median over the level fell more than ``FREQ_DROP`` below its value at the level's start.
Readers take root paths (``proc_root``, ``sys_root``) so tests can use a directory laid out like them.
"""
from __future__ import annotations

import glob
import os
import statistics
import threading
import time

NOISY_SHARE = 0.10   # other programs' CPU / (CPUs x wall time)
FREQ_DROP = 0.15     # 1 - median frequency over the level / frequency at its start
SAMPLE_S = 1.0       # the frequency sampler's period
INDICATIVE_S = 1.0   # a level measured over less than this: /proc/stat's 10 ms ticks make its share rough
_perf = time.perf_counter
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_cpu_times(proc_root: str = "/proc") -> dict | None:
    """{"busy_s", "steal_s", "cpus"} from /proc/stat, or None when unreadable (not Linux)."""
    try:
        with open(f"{proc_root}/stat") as f:
            text = f.read()
    except OSError:
        return None
    cpus, busy, steal = 0, None, 0.0
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            v += [0] * (8 - len(v))
            # user nice system idle iowait irq softirq steal [guest guest_nice: already inside user, nice]
            busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / _TICK
            steal = v[7] / _TICK
        elif line.startswith("cpu") and line[3:4].isdigit():
            cpus += 1
    if busy is None:
        return None
    return {"busy_s": busy, "steal_s": steal, "cpus": cpus or (os.cpu_count() or 1)}


def read_process_cpu_s(pid: int, proc_root: str = "/proc") -> float | None:
    """user + system CPU seconds of one process (all its threads), None when it is gone."""
    try:
        with open(f"{proc_root}/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(rest[11]) + int(rest[12])) / _TICK


def read_freq_mhz(sys_root: str = "/sys") -> float | None:
    """Median over CPUs of scaling_cur_freq (MHz), None when the kernel exposes no cpufreq."""
    values = []
    for path in glob.glob(f"{sys_root}/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            with open(path) as f:
                values.append(int(f.read().strip()) / 1000.0)
        except (OSError, ValueError):
            pass
    return statistics.median(values) if values else None


def read_load_1m(proc_root: str = "/proc") -> float | None:
    try:
        with open(f"{proc_root}/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def own_pids(extra: list[int | None] = ()) -> list[int]:
    """This process, its children (a model worker, a server the app launched) and ``extra`` (the candidates'
    processes: every loaded model's, so an idle one waiting for its turn is not counted as another program)."""
    pids = {os.getpid()}
    try:
        import psutil
        pids |= {c.pid for c in psutil.Process().children(recursive=True)}
    except Exception:
        pass
    pids |= {p for p in extra if p}
    return sorted(pids)


class Window:
    """One measured window: started by ``NoiseMeter.start``, ended by ``stop``."""

    def __init__(self, meter: "NoiseMeter", pids: list[int]):
        self.meter, self.pids = meter, list(pids)
        self.freqs: list[float] = []
        self._stop = threading.Event()
        self._thread = None
        f0 = read_freq_mhz(meter.sys_root)
        self.freq_start = f0
        if f0 is not None:
            self.freqs.append(f0)
            self._thread = threading.Thread(target=self._sample, name="noise-sampler", daemon=True)
            self._thread.start()
        self.own0 = {p: read_process_cpu_s(p, meter.proc_root) for p in self.pids}
        self.cpu0 = read_cpu_times(meter.proc_root)
        self.t0 = _perf()

    def _sample(self) -> None:
        while not self._stop.wait(self.meter.sample_s):
            f = read_freq_mhz(self.meter.sys_root)
            if f is not None:
                self.freqs.append(f)


class NoiseMeter:
    def __init__(self, proc_root: str = "/proc", sys_root: str = "/sys", sample_s: float = SAMPLE_S):
        self.proc_root, self.sys_root, self.sample_s = proc_root, sys_root, sample_s

    def start(self, pids: list[int]) -> Window:
        return Window(self, pids)

    def stop(self, w: Window) -> dict:
        """The window's figures: wall_s, others_cpu_s, steal_s, cpus, own_cpu_s, freq samples, load."""
        t1 = _perf()
        cpu1 = read_cpu_times(self.proc_root)
        own = 0.0
        for p in w.pids:
            a, b = w.own0.get(p), read_process_cpu_s(p, self.proc_root)
            if a is not None and b is not None:
                own += b - a
        w._stop.set()
        if w._thread is not None:
            w._thread.join(timeout=1.0)
            f = read_freq_mhz(self.sys_root)
            if f is not None:
                w.freqs.append(f)
        out = {"wall_s": t1 - w.t0, "own_cpu_s": own, "others_cpu_s": None, "steal_s": None,
               "cpus": (cpu1 or {}).get("cpus") or os.cpu_count() or 1, "freq_start_mhz": w.freq_start,
               "freq_mhz": list(w.freqs), "load_avg_1m": read_load_1m(self.proc_root)}
        if w.cpu0 is not None and cpu1 is not None:
            out["others_cpu_s"] = max(0.0, cpu1["busy_s"] - w.cpu0["busy_s"] - own)
            out["steal_s"] = max(0.0, cpu1["steal_s"] - w.cpu0["steal_s"])
        return out


def level_noise(windows: list[dict], model_process_known: bool = True) -> dict:
    """A level's noise from its windows: {"noisy", "reason", "others_cores", "others_share", "steal_share",
    "cpus", "wall_s", "indicative" (under INDICATIVE_S of windows), "freq_start_mhz", "freq_min_mhz", "freq_median_mhz", "freq_drop", "load_avg_1m"}.
    ``noisy`` is None when nothing could be read (not Linux). ``model_process_known`` False: the model's
    server is a process the app does not know (an endpoint found by no PID), so its CPU is inside
    "others" when it runs on this machine; the reason says so."""
    windows = [w for w in windows if w]
    wall = sum(w["wall_s"] for w in windows)
    cpus = max((w["cpus"] for w in windows), default=os.cpu_count() or 1)
    known = [w for w in windows if w.get("others_cpu_s") is not None]
    others_cores = (sum(w["others_cpu_s"] for w in known) / wall) if known and wall > 0 else None
    if others_cores is not None:   # /proc/stat counts in ticks (10 ms): a short window can read over 100%
        others_cores = min(others_cores, float(cpus))
    steal_cores = (sum(w["steal_s"] for w in known) / wall) if known and wall > 0 else None
    freqs = [f for w in windows for f in w.get("freq_mhz") or []]
    f0 = next((w["freq_start_mhz"] for w in windows if w.get("freq_start_mhz") is not None), None)
    f_med = statistics.median(freqs) if freqs else None
    drop = (1 - f_med / f0) if f0 and f_med is not None else None
    loads = [w["load_avg_1m"] for w in windows if w.get("load_avg_1m") is not None]
    out = {"cpus": cpus, "wall_s": wall, "indicative": wall < INDICATIVE_S, "others_cores": others_cores,
           "others_share": None if others_cores is None else others_cores / cpus,
           "steal_share": None if steal_cores is None else steal_cores / cpus,
           "freq_start_mhz": f0, "freq_min_mhz": min(freqs) if freqs else None, "freq_median_mhz": f_med,
           "freq_drop": drop, "load_avg_1m": max(loads) if loads else None}
    reasons = []
    if out["others_share"] is not None and out["others_share"] > NOISY_SHARE:
        reasons.append(f"measured while other programs used {others_cores:.1f} cores "
                       f"({out['others_share']:.0%} of {cpus} CPUs)")
    if drop is not None and drop > FREQ_DROP:
        reasons.append(f"CPU frequency fell {drop:.0%} ({f0:.0f} -> {f_med:.0f} MHz median)")
    if reasons and not model_process_known and out["others_share"] is not None and out["others_share"] > NOISY_SHARE:
        reasons.append("the model server's process is unknown (give its PID): if it runs on this machine, "
                       "its own CPU is inside that figure")
    out["noisy"] = None if others_cores is None and drop is None else bool(reasons)
    out["reason"] = "; ".join(reasons) or None
    out["model_process_known"] = model_process_known
    return out
