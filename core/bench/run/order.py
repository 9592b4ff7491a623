"""The order candidates run in: interleaved (round by round, rotating) or blocked (all of one, then the next).

Interleaved, round r runs the models rotated by r - 1 (round 1: A B C, round 2: B C A, round 3: C A B),
so whatever drifts during the run (another program, a fan, a clock) falls on every candidate alike, and
each pair of candidates can be compared round by round (``core.bench.conditions.paired``). The models stay loaded
between their turns; ``choose_order`` checks beforehand that they fit in memory together and, when they do
not, runs them blocked, saying why. The choice is recorded with the run (its environment's ``schedule``).
"""
from __future__ import annotations

from pathlib import Path

from core.errors import UserError

ORDERS = ("interleaved", "blocked")
MEMORY_FACTOR = 1.2     # weights on disk -> resident memory, with the runtime's working memory
MEMORY_HEADROOM = 0.8   # the share of the available memory the models may take together


def validate_order(order: str) -> str:
    if order not in ORDERS:
        raise UserError(f"order must be one of {', '.join(ORDERS)} (got {order!r})")
    return order


def rotation(items: list, round_no: int) -> list:
    """``items`` rotated for round ``round_no`` (1-based): round 1 as given, each later round one further."""
    if not items:
        return []
    k = (round_no - 1) % len(items)
    return items[k:] + items[:k]


def model_memory_mb(spec) -> float:
    """What keeping ``spec`` loaded costs this machine: 0 for an endpoint (its server holds the model), else
    its weights (``disk_mb`` or the size of its files) x MEMORY_FACTOR; 0 when unknown."""
    if spec.backend == "openai":
        return 0.0
    mb = spec.disk_mb
    if not mb and spec.path:
        p = Path(spec.path)
        try:
            files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
            mb = sum(f.stat().st_size for f in files) / 1e6
        except OSError:
            mb = None
    return float(mb or 0.0) * MEMORY_FACTOR


def choose_order(specs: list, requested: str, available_mb: float | None = None) -> dict:
    """{"order", "requested", "keep_loaded", "reason", "memory_needed_mb", "memory_available_mb"}."""
    validate_order(requested)
    if available_mb is None:
        import psutil
        available_mb = psutil.virtual_memory().available / 1e6
    needed = sum(model_memory_mb(s) for s in specs)
    out = {"requested": requested, "memory_needed_mb": round(needed, 1),
           "memory_available_mb": round(available_mb, 1)}
    if requested == "blocked":
        return dict(out, order="blocked", keep_loaded=False, reason="blocked order asked for")
    if len(specs) < 2:
        return dict(out, order="interleaved", keep_loaded=True, reason="one model")
    if needed > available_mb * MEMORY_HEADROOM:
        return dict(out, order="blocked", keep_loaded=False,
                    reason=f"the models need about {needed / 1e3:.1f} GB together, more than "
                           f"{MEMORY_HEADROOM:.0%} of the {available_mb / 1e3:.1f} GB available: run blocked")
    return dict(out, order="interleaved", keep_loaded=True,
                reason=f"the models fit in memory together (about {needed / 1e3:.1f} GB of "
                       f"{available_mb / 1e3:.1f} GB available)")
