"""A process on this machine: memory, CPU time, liveness, through psutil (Linux, Windows, macOS). The one place
that reads them.

The engines measure the process that runs the model (a Foundry worker, a llama.cpp server, an endpoint's
server found by its port) and this process (the observer); every reading goes through here. Only the
engines need it (the catalog does not read processes), so it lives in core/engines.

Peak resident memory is the one figure psutil does not give everywhere: Windows has it (``peak_wset``, the
peak working set), Linux keeps it in ``/proc/PID/status`` (``VmHWM``), macOS gives it for no other process
(unknown, never a guess). Each reading says where its figures came from (``source``).
"""
from __future__ import annotations

import psutil

MB = 1024.0 * 1024.0


def _vmhwm_mb(pid: int, proc_root: str = "/proc") -> float | None:
    """Linux only: the peak resident set (VmHWM) from /proc/PID/status, None elsewhere or when unreadable."""
    try:
        with open(f"{proc_root}/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split(":", 1)[1].split()[0]) / 1024.0   # kB -> MB
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_mb(mem, pid: int, proc_root: str = "/proc") -> tuple[float | None, str | None]:
    """(peak resident MB, its source) from psutil's ``memory_info()`` of ``pid``: Windows' ``peak_wset``, else
    Linux's VmHWM, else (None, None)."""
    wset = getattr(mem, "peak_wset", None)
    if wset is not None:
        return wset / MB, "peak_wset"
    hwm = _vmhwm_mb(pid, proc_root)
    if hwm is not None:
        return hwm, "VmHWM"
    return None, None


def memory_mb(pid: int) -> dict[str, float]:
    """{"VmRSS": MB, "VmHWM": MB (peak, when known)} of a process; {} when it is gone (the keys keep their
    Linux names: the peak is the peak working set on Windows)."""
    try:
        mem = psutil.Process(pid).memory_info()
    except (psutil.Error, OSError):
        return {}
    out = {"VmRSS": mem.rss / MB}
    peak, _ = peak_mb(mem, pid)
    if peak is not None:
        out["VmHWM"] = peak
    return out


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (children excluded); None when it is gone."""
    try:
        t = psutil.Process(pid).cpu_times()
    except (psutil.Error, OSError):
        return None
    return t.user + t.system


def alive(pid: int | None) -> bool:
    """The process exists and is neither a zombie nor dead (an exited child not yet reaped is a zombie)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (psutil.Error, OSError):
        return False


def process_stats(pid: int) -> dict | None:
    """{"rss_mb", "peak_rss_mb", "cpu_s" (user+system), "source": {figure: where from}} of a process; None if
    it is gone."""
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            mem = p.memory_info()
            t = p.cpu_times()
    except (psutil.Error, OSError):
        return None
    peak, peak_source = peak_mb(mem, pid)
    return {"rss_mb": mem.rss / MB, "peak_rss_mb": peak, "cpu_s": t.user + t.system,
            "source": {"rss_mb": "psutil", "cpu_s": "psutil", "peak_rss_mb": peak_source}}
