"""A process on this machine, read from /proc: memory, CPU time, liveness. The one place that parses it.

The engines measure the process that runs the model (a Foundry worker, a llama.cpp server, an endpoint's
server found by its port) and this process (the observer); every reading goes through here. Only the
engines need it (the catalog does not read processes), so it lives in core/engines.
"""
from __future__ import annotations

import os

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(pid: int, name: str) -> str | None:
    try:
        with open(f"/proc/{pid}/{name}", encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def memory_mb(pid: int) -> dict[str, float]:
    """{"VmRSS": MB, "VmHWM": MB (peak)} of a process, from /proc/PID/status; {} when it is gone."""
    out: dict[str, float] = {}
    for line in (_read(pid, "status") or "").splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) / 1024.0  # kB -> MB
    return out


def _stat_fields(pid: int) -> list[str] | None:
    text = _read(pid, "stat")
    if not text or ")" not in text:
        return None
    return text.rsplit(")", 1)[1].split()     # after the command name, which may hold spaces and brackets


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (utime + stime in /proc/PID/stat); None when it is gone."""
    fields = _stat_fields(pid)
    try:
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK if fields else None
    except (IndexError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    """The process exists and is neither a zombie nor dead (an exited child not yet reaped is a zombie)."""
    fields = _stat_fields(pid) if pid else None
    return bool(fields) and fields[0] not in ("Z", "X")


def process_stats(pid: int) -> dict | None:
    """{"rss_mb", "peak_rss_mb" (VmHWM), "cpu_s" (user+system)} of a process; None if it is gone."""
    mem = memory_mb(pid)
    cpu = cpu_s(pid)
    if not mem and cpu is None:
        return None
    return {"rss_mb": mem.get("VmRSS"), "peak_rss_mb": mem.get("VmHWM"), "cpu_s": cpu}
