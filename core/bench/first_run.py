"""What the Benchmark page starts from: a first run that finishes in well under two minutes on the smallest
starter model, and a length sweep whose lengths reach the team's target meeting.

The numbers of a quick run are real but thin (one round: no interval on a paired ratio); the page says so,
and more rounds are one field away.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

QUICK_PROMPT_SET = "meeting_notes"   # the team's job on short meetings; long_meetings takes minutes per request


@dataclass(frozen=True)
class QuickRun:
    rounds: int = 1
    warmup: int = 1          # one request per level, excluded: the first one pays for caches the rest share
    max_tokens: int = 64     # enough for a few lines of notes; the time per token is measured all the same
    concurrency: str = "1"


QUICK = QuickRun()


def quick_prompt_set(names: list[str]) -> int:
    """Index of the first run's prompt set among the shipped ones (the first one when it is not shipped)."""
    return names.index(QUICK_PROMPT_SET) if QUICK_PROMPT_SET in names else 0


def parameter_count(text) -> float | None:
    """"135M" -> 1.35e8, "1.5B" -> 1.5e9; None when not written that way."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMBT])\s*", str(text or ""), re.IGNORECASE)
    return float(m[1]) * {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m[2].upper()] if m else None


def _size(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and v == v else None


def smallest_model(rows: list[dict]) -> dict | None:
    """The runnable model that is quickest to try: fewest parameters, then Foundry Local before other engines
    (it runs in-process; llama.cpp starts a server first), then smallest on disk. None when no row has a
    parameter count or a size."""
    known = [r for r in rows if parameter_count(r.get("parameters")) is not None or _size(r.get("disk_mb")) is not None]
    if not known:
        return None
    inf = float("inf")
    return min(known, key=lambda r: (parameter_count(r.get("parameters")) or inf, r.get("backend") != "foundry",
                                     _size(r.get("disk_mb")) or inf, str(r.get("id"))))
