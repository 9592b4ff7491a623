"""One time axis per run: every request's start and end in seconds from the run's start (``run_start_s``,
``run_end_s``, one ``time.perf_counter`` clock for the whole sitting) and the UTC wall time of that start
(the run's environment ``clock``), so what ran when can be seen: the interleaving, stalls, noisy stretches.

``start_offset_s`` / ``end_offset_s`` stay as they were (from the start of the request's turn: the measured
window of its level); ``run_*_s`` are the same instants on the run's clock. A resumed run's later sittings
(``segment`` > 0) have a clock of their own, starting at 0 again; the timeline keeps them apart by segment.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

TIMELINE_KEYS = ("model", "backend", "concurrency", "segment", "turn", "turn_position", "round", "prompt_id",
                 "warmup", "ok", "run_start_s", "run_end_s")


def clock_record(segment: int = 0) -> dict:
    """What the run's environment keeps of its clock: the UTC wall time at its start."""
    return {"started_utc": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "clock": "perf_counter", "segment": int(segment)}


def on_run_clock(row: dict, shift_s: float) -> dict:
    """The request row with its start and end on the run's clock (``shift_s``: its turn's start on that clock)."""
    row["run_start_s"] = None if row.get("start_offset_s") is None else row["start_offset_s"] + shift_s
    row["run_end_s"] = None if row.get("end_offset_s") is None else row["end_offset_s"] + shift_s
    return row


def _plain(v):
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def timeline_rows(requests: pd.DataFrame) -> list[dict]:
    """The requests (warm-ups included, marked) on the run's clock, in start order; rows stored before the
    run had a clock (no ``run_start_s``) are left out."""
    if requests is None or requests.empty or "run_start_s" not in requests:
        return []
    df = requests[requests["run_start_s"].notna()]
    out = [{k: _plain(r.get(k)) for k in TIMELINE_KEYS} for r in df.to_dict("records")]
    return sorted(out, key=lambda r: (r["segment"] or 0, r["run_start_s"]))


def run_timeline(run_id: str) -> dict:
    """{"started_utc", "requests": [...]}: the run's timeline (the CLI's --json ``timeline``)."""
    from core.store import bench as db
    run = db.get_run(run_id) or {}
    clock = (run.get("environment") or {}).get("clock") or {}
    return {"started_utc": clock.get("started_utc"),
            "requests": timeline_rows(db.run_requests(run_id, include_warmup=True))}


def timeline_chart(requests: pd.DataFrame):
    """Requests by model over the run's time, one bar per request from start to end, coloured by turn
    (failed requests in red outline, warm-ups faint); None when no request has run times."""
    import altair as alt
    rows = timeline_rows(requests)
    if not rows:
        return None
    df = pd.DataFrame(rows)
    df["candidate"] = df["model"].astype(str) + " [" + df["backend"].astype(str) + "] c=" \
        + df["concurrency"].astype(str)
    df["run_end_s"] = df["run_end_s"].fillna(df["run_start_s"])
    df["turn"] = df["turn"].fillna(-1).astype(int).astype(str)
    df["kind"] = ["warm-up" if w else ("ok" if ok else "failed") for w, ok in zip(df["warmup"], df["ok"])]
    if df["segment"].fillna(0).nunique() > 1:
        df["candidate"] = df["candidate"] + " (sitting " + df["segment"].fillna(0).astype(int).astype(str) + ")"
    return alt.Chart(df).mark_bar(height=6).encode(
        x=alt.X("run_start_s:Q", title="seconds from the run's start"), x2="run_end_s:Q",
        y=alt.Y("candidate:N", title=None, axis=alt.Axis(labelLimit=340)),
        yOffset=alt.YOffset("jitter:Q", title=None),
        color=alt.Color("turn:N", title="turn", legend=alt.Legend(columns=2, symbolLimit=40)),
        opacity=alt.condition(alt.datum.kind == "warm-up", alt.value(0.3), alt.value(0.8)),
        stroke=alt.condition(alt.datum.kind == "failed", alt.value("red"), alt.value(None)),
        tooltip=["candidate", "turn", "round", "prompt_id", "kind", "run_start_s", "run_end_s"],
    ).transform_calculate(jitter="random()").properties(height=max(120, 60 * df["candidate"].nunique()))
