"""Paired comparisons: two candidates measured in the same rounds, compared round by round.

For each pair (A, B) at one concurrency level and each metric (TTFT, decode speed, E2E): in every round
where both have successful requests, the median of A's requests over the median of B's (a per-round
ratio). The pair's ratio is the geometric mean of the per-round ratios, with a percentile bootstrap 95%
interval over rounds (``core.stats.bootstrap_ci`` on their logarithms). Drift that hits both candidates
in a round (another program, a clock change) divides out, which an interleaved run makes likely: that is
why interleaving is the default (``core.bench.run.order``). A pair whose decode-speed interval includes 1.0 is
"too close to call on speed", whatever the point estimates; with fewer than 2 rounds there is no interval
("n/a") and no call either.
"""
from __future__ import annotations

import math
import statistics
from itertools import combinations

import numpy as np

from core import metrics
from core.stats import bootstrap_ci

# (metric key in the pair's result, what each request gives, what the number says)
METRICS = (
    ("ttft_ms", lambda r: r.get("ttft_ms"), "TTFT"),
    ("decode_tok_s", lambda r: metrics.per_s(r.get("tpot_ms")), "decode speed"),
    ("e2e_ms", lambda r: r.get("e2e_ms"), "E2E latency"),
)
TOO_CLOSE = "too close to call on speed"


def _ok(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def ratio_over_rounds(a_by_round: dict[int, list[float]], b_by_round: dict[int, list[float]]) -> dict:
    """{"ratio", "ci_low", "ci_high", "rounds", "close"} of A over B from their values by round."""
    logs = []
    for rnd in sorted(set(a_by_round) & set(b_by_round)):
        a = [v for v in a_by_round[rnd] if _ok(v)]
        b = [v for v in b_by_round[rnd] if _ok(v)]
        if a and b:
            logs.append(math.log(statistics.median(a) / statistics.median(b)))
    if not logs:
        return {"ratio": None, "ci_low": None, "ci_high": None, "rounds": 0, "close": None}
    ci = bootstrap_ci(logs, np.mean)
    lo, hi = (math.exp(ci[0]), math.exp(ci[1])) if ci else (None, None)
    return {"ratio": math.exp(sum(logs) / len(logs)), "ci_low": lo, "ci_high": hi, "rounds": len(logs),
            "close": None if ci is None else lo <= 1.0 <= hi}


def speed_sentence(pair: dict) -> str:
    """"A decodes 1.32x faster than B (1.25-1.40)", or "too close to call on speed" (with why)."""
    d = pair["decode_tok_s"]
    if d["ratio"] is None:
        return f"{pair['a']} vs {pair['b']}: no decode speed measured in common rounds"
    if d["close"] is None:
        return f"{pair['a']} vs {pair['b']}: {TOO_CLOSE} (fewer than 2 rounds: no interval)"
    if d["close"]:
        return (f"{pair['a']} vs {pair['b']}: {TOO_CLOSE} (decode ratio {d['ratio']:.2f}, "
                f"{d['ci_low']:.2f}-{d['ci_high']:.2f} includes 1.0)")
    fast, slow, r, lo, hi = pair["a"], pair["b"], d["ratio"], d["ci_low"], d["ci_high"]
    if r < 1:
        fast, slow, r, lo, hi = slow, fast, 1 / r, 1 / hi, 1 / lo
    return f"{fast} decodes {r:.2f}x faster than {slow} ({lo:.2f}-{hi:.2f})"


def paired_comparisons(rows: list[dict], labels: dict[tuple, str] | None = None,
                       order: list[tuple] | None = None) -> list[dict]:
    """Every pair of candidates at every concurrency level, from measured request rows (warm-ups, failed
    requests dropped). ``labels``: (model, backend) -> the name to show; ``order``: the (model, backend)
    keys in the run's order (A is the earlier). Each pair: {"concurrency", "a", "b", "a_model", "a_backend",
    "b_model", "b_backend", "ttft_ms", "decode_tok_s", "e2e_ms" (each ``ratio_over_rounds``: A over B),
    "close_on_speed", "sentence"}."""
    labels = labels or {}
    by: dict = {}
    for r in rows:
        if r.get("warmup") or not r.get("ok") or r.get("round") is None:
            continue
        key = (r["model"], r["backend"])
        by.setdefault(int(r["concurrency"]), {}).setdefault(key, []).append(r)
    out = []
    for level in sorted(by):
        keys = sorted(by[level], key=lambda k: (order.index(k) if order and k in order else len(order or []), k))
        for ka, kb in combinations(keys, 2):
            pair = {"concurrency": level, "a": labels.get(ka, ka[0]), "b": labels.get(kb, kb[0]),
                    "a_model": ka[0], "a_backend": ka[1], "b_model": kb[0], "b_backend": kb[1]}
            for name, value, _ in METRICS:
                rounds_a, rounds_b = {}, {}
                for r in by[level][ka]:
                    rounds_a.setdefault(int(r["round"]), []).append(value(r))
                for r in by[level][kb]:
                    rounds_b.setdefault(int(r["round"]), []).append(value(r))
                pair[name] = ratio_over_rounds(rounds_a, rounds_b)
            pair["close_on_speed"] = pair["decode_tok_s"]["close"] is not False
            pair["sentence"] = speed_sentence(pair)
            out.append(pair)
    return out


def run_pairs(run_id: str) -> list[dict]:
    """The paired comparisons of a stored run (``paired_comparisons`` over its rows), [] when unknown."""
    from core.store import bench as db
    run = db.get_run(run_id)
    if run is None:
        return []
    df = db.run_requests(run_id)
    rows = [db.clean_row(r) for r in (df.to_dict("records") if len(df) else [])]
    models = sorted(run["models"], key=lambda m: m.get("position") or 0)
    order = list(dict.fromkeys((m["model"], m["backend"]) for m in models))
    labels = {(m["model"], m["backend"]): m.get("label") or m["model"] for m in models}
    return paired_comparisons(rows, labels, order)
