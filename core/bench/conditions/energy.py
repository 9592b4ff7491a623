"""Energy per summary: joules per request and per output token of each level.

An ``EnergySource`` is a cumulative energy counter (``read_j``) with a ``label`` saying what it covers.
``RaplSource`` reads Linux powercap (``/sys/class/powercap/intel-rapl:N/energy_uj``, the package domains;
AMD exposes the same interface), handling the counter's wrap-around via ``max_energy_range_uj``. Other
systems (macOS powermetrics, Windows EMI) would be further sources behind the same three members.

Over a level: the counter's delta over each measured window, minus an idle baseline (the power drawn over
``IDLE_BASELINE_S`` just before the level, with nothing sent) times the window's length. RAPL counts the
whole CPU package, so other programs are inside it: the label says so. Where no counter can be read, the
figure is an **estimate**: the model process's CPU seconds x ``W_PER_CORE`` (a stated figure, not a
measurement), labelled as such with the reason RAPL was not used; with no model process known (an HTTP
server the app did not start), no figure at all.
"""
from __future__ import annotations

import glob
import re
import time
from typing import Protocol

IDLE_BASELINE_S = 1.0
W_PER_CORE = 5.0       # a laptop CPU core at full load, stated (15-28 W package / 4 cores), not measured
RAPL_LABEL = "RAPL package: whole CPU, includes other programs"
_perf = time.perf_counter


class EnergySource(Protocol):
    label: str

    def read_j(self) -> float:
        """Energy counted so far (joules, cumulative, monotonic across wraps while read often enough)."""


class RaplSource:
    """The package domains of /sys/class/powercap/intel-rapl:N (N a number: the sub-domains core, uncore
    and dram are inside the package and not added again)."""

    def __init__(self, domains: list[str]):
        self.domains = domains
        self.max_uj = [int(_read(f"{d}/max_energy_range_uj")) for d in domains]
        self._last = [int(_read(f"{d}/energy_uj")) for d in domains]
        self._total_uj = 0
        self.label = RAPL_LABEL if len(domains) == 1 else f"{RAPL_LABEL} ({len(domains)} packages)"

    def read_j(self) -> float:
        for i, d in enumerate(self.domains):
            now = int(_read(f"{d}/energy_uj"))
            self._total_uj += wrapped_delta_uj(self._last[i], now, self.max_uj[i])
            self._last[i] = now
        return self._total_uj / 1e6


def wrapped_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """The counter's advance from ``before`` to ``after``: it wraps to 0 past ``max_range_uj``."""
    return after - before if after >= before else after + (max_range_uj - before)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def find_source(sys_root: str = "/sys") -> tuple[EnergySource | None, str | None]:
    """(the RAPL source, None), or (None, why there is none: absent, or unreadable)."""
    domains = sorted(d for d in glob.glob(f"{sys_root}/class/powercap/intel-rapl:*")
                     if re.search(r"intel-rapl:\d+$", d))
    if not domains:
        return None, "no RAPL counter on this machine (/sys/class/powercap/intel-rapl:* absent)"
    try:
        return RaplSource(domains), None
    except PermissionError:
        return None, "the RAPL counter is not readable (energy_uj needs root on recent kernels)"
    except (OSError, ValueError) as exc:
        return None, f"the RAPL counter could not be read ({type(exc).__name__})"


class EnergyMeter:
    """One per run: ``baseline()`` before each level, ``start()`` / ``stop()`` around each window."""

    def __init__(self, sys_root: str = "/sys", baseline_s: float = IDLE_BASELINE_S, w_per_core: float = W_PER_CORE):
        self.source, self.why_not = find_source(sys_root)
        self.baseline_s, self.w_per_core = baseline_s, w_per_core

    def baseline(self, cancel=None) -> float | None:
        """Idle power (W) over ``baseline_s`` with nothing sent; None without a counter."""
        if self.source is None:
            return None
        try:
            j0, t0 = self.source.read_j(), _perf()
            if cancel is not None:
                cancel.wait(self.baseline_s)
            else:
                time.sleep(self.baseline_s)
            j1, t1 = self.source.read_j(), _perf()
        except OSError:
            return None
        return (j1 - j0) / (t1 - t0) if t1 > t0 else None

    def start(self) -> tuple[float, float] | None:
        if self.source is None:
            return None
        try:
            return self.source.read_j(), _perf()
        except OSError:
            return None

    def stop(self, started: tuple[float, float] | None) -> dict | None:
        """{"joules", "wall_s"} of one window (the counter's delta), None without a counter."""
        if started is None:
            return None
        try:
            j1, t1 = self.source.read_j(), _perf()
        except OSError:
            return None
        return {"joules": j1 - started[0], "wall_s": t1 - started[1]}

    def level(self, windows: list[dict | None], idle_w: float | None, *, cpu_s: float | None, requests: int,
              tokens: int) -> dict:
        """The level's energy (see ``level_energy``)."""
        return level_energy(windows, idle_w, cpu_s=cpu_s, requests=requests, tokens=tokens,
                            source=self.source.label if self.source else None, why_not=self.why_not,
                            w_per_core=self.w_per_core)


def level_energy(windows: list[dict | None], idle_w: float | None, *, cpu_s: float | None, requests: int,
                 tokens: int, source: str | None, why_not: str | None, w_per_core: float = W_PER_CORE) -> dict:
    """{"joules", "j_per_request", "j_per_token", "source", "estimate", "reason", "idle_w", "window_s"}.

    Measured (``source`` given and every window read): sum of window deltas - idle_w x window time.
    Otherwise the estimate from the model process's CPU seconds, or nothing (``joules`` None) with why."""
    out = {"joules": None, "j_per_request": None, "j_per_token": None, "source": None, "estimate": None,
           "reason": None, "idle_w": idle_w, "window_s": None, "requests": requests, "tokens": tokens}
    measured = source is not None and windows and all(w is not None for w in windows)
    if measured:
        wall = sum(w["wall_s"] for w in windows)
        joules = sum(w["joules"] for w in windows) - (idle_w or 0.0) * wall
        out.update(joules=joules, source=source, estimate=False, window_s=wall,
                   reason=None if idle_w is not None else "no idle baseline: the whole package's energy")
    elif cpu_s is not None:
        joules = cpu_s * w_per_core
        out.update(joules=joules, estimate=True,
                   source=f"estimate: model process CPU {cpu_s:.2f} s x {w_per_core:g} W per core (stated, not measured)",
                   reason=why_not or "the energy counter could not be read during the level")
    else:
        out.update(reason=(why_not or "the energy counter could not be read during the level")
                   + "; no estimate either: the model's process is unknown (its CPU seconds are not measured)")
        return out
    out["j_per_request"] = joules / requests if requests else None
    out["j_per_token"] = joules / tokens if tokens else None
    return out

