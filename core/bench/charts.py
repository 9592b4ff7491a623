"""Benchmark charts (Altair specs) and comparison tables, from store DataFrames. No Streamlit here."""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.metrics import SHOWN, per_s
from core.stats import bootstrap_ci

LABEL_LIMIT = 340   # px for a model name on an axis or in a legend: Foundry ids are long, their ends matter
# One band per model on a chart with a row per model: its height grows with the rows. A fixed height is
# squeezed by the page (axis and title fitted into it) until two names are drawn on top of each other.
ROW = alt.Step(40)
# The level table's first columns: what decides (speed, waits, memory, failures); the detail follows.
LEAD_COLUMNS = ("model", "engine", "concurrency", "decode speed p50 (tok/s per request)", "TTFT p50 (ms)",
                "E2E p50 (ms)", "peak RSS (MB)", "failed", "ok", "status")

def _label(df: pd.DataFrame) -> pd.Series:
    return df["model"].astype(str) + " [" + df["backend"].astype(str) + "] c=" + df["concurrency"].astype(str)


def ok_requests(requests: pd.DataFrame) -> pd.DataFrame:
    if requests is None or requests.empty:
        return pd.DataFrame()
    df = requests[(~requests["warmup"].astype(bool)) & requests["ok"].astype(bool)].copy()
    if df.empty:
        return df
    df["level"] = _label(df)
    df["decode_tok_s"] = [per_s(v) if v == v else None for v in df["tpot_ms"]]
    return df


def latency_boxes(requests: pd.DataFrame, metric: str = "ttft_ms", title: str = "TTFT (ms)") -> alt.Chart | None:
    df = ok_requests(requests)
    if df.empty or df[metric].isna().all():
        return None
    return alt.Chart(df).mark_boxplot(extent=1.5).encode(
        x=alt.X(f"{metric}:Q", title=title), y=alt.Y("level:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        color=alt.Color("level:N", legend=None)).properties(height=ROW)


def latency_ecdf(requests: pd.DataFrame, metric: str = "e2e_ms", title: str = "E2E latency (ms)") -> alt.Chart | None:
    df = ok_requests(requests)
    if df.empty or df[metric].isna().all():
        return None
    return alt.Chart(df).transform_window(
        ecdf="cume_dist()", sort=[{"field": metric}], groupby=["level"]).mark_line(interpolate="step-after").encode(
        x=alt.X(f"{metric}:Q", title=title), y=alt.Y("ecdf:Q", title="fraction of requests"), color=_level_color())


def _level_color() -> alt.Color:
    return alt.Color("level:N", title="model [engine] concurrency", legend=alt.Legend(labelLimit=LABEL_LIMIT))


def ttft_vs_speed(requests: pd.DataFrame) -> alt.Chart | None:
    df = ok_requests(requests)
    if df.empty or df["decode_tok_s"].isna().all():
        return None
    return alt.Chart(df).mark_circle(size=50, opacity=0.7).encode(
        x=alt.X("ttft_ms:Q", title="TTFT (ms)"), y=alt.Y("decode_tok_s:Q", title="decode speed (tokens/s, 1/TPOT)"),
        color=_level_color(), shape=alt.Shape("outlier:N", title="outlier"),
        tooltip=["level", "prompt_id", "round", "ttft_ms", "decode_tok_s", "completion_tokens"])


def prompt_heatmap(requests: pd.DataFrame, metric: str = "e2e_ms") -> alt.Chart | None:
    """Per prompt x level: median of the metric; outlier requests counted in the tooltip."""
    df = ok_requests(requests)
    if df.empty:
        return None
    agg = df.groupby(["prompt_id", "level"], as_index=False).agg(
        value=(metric, "median"), outliers=("outlier", "sum"), n=(metric, "size"))
    return alt.Chart(agg).mark_rect().encode(
        x=alt.X("prompt_id:N", title="prompt"), y=alt.Y("level:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        color=alt.Color("value:Q", title=f"median {metric}"),
        tooltip=["prompt_id", "level", alt.Tooltip("value:Q", format=".1f"), "outliers", "n"]).properties(height=ROW)


def throughput_vs_concurrency(results: list[dict]) -> alt.Chart | None:
    rows = [{"model": f"{r['model']} [{r['backend']}]", "concurrency": r["concurrency"],
             "throughput_tok_s": r["throughput_tok_s"]} for r in results if r.get("throughput_tok_s") is not None]
    if not rows:
        return None
    df = pd.DataFrame(rows)
    return alt.Chart(df).mark_line(point=True).encode(
        x=alt.X("concurrency:Q", title="concurrency", scale=alt.Scale(type="log", base=2)),
        y=alt.Y("throughput_tok_s:Q", title="aggregate throughput (output tokens/s)"),
        color=alt.Color("model:N", legend=alt.Legend(labelLimit=LABEL_LIMIT)))


MEMORY_PARTS = (("rss_before_mb", "runtime baseline (before load)"), ("weights_mb", "weights (after load - before)"),
                ("working_mb", "working memory (peak - after load)"))


def memory_stacked(results: list[dict]) -> alt.Chart | None:
    """Peak memory of each model's process, stacked: runtime baseline, weights, working memory (levels
    whose three parts are all known; the largest peak per model and engine)."""
    best: dict = {}
    for r in results:
        if any(r.get(k) is None for k, _ in MEMORY_PARTS):
            continue
        key = f"{r['model']} [{r['backend']}]"
        if key not in best or (r.get("peak_rss_mb") or 0) > (best[key].get("peak_rss_mb") or 0):
            best[key] = r
    rows = [{"model": key, "part": label, "order": i, "MB": max(0.0, float(r[k]))}
            for key, r in best.items() for i, (k, label) in enumerate(MEMORY_PARTS)]
    if not rows:
        return None
    return alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
        x=alt.X("MB:Q", title="resident memory of the model's process (MB)", stack="zero"),
        y=alt.Y("model:N", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        color=alt.Color("part:N", title=None, sort=[label for _, label in MEMORY_PARTS],
                        legend=alt.Legend(orient="bottom")),
        order=alt.Order("order:Q"), tooltip=["model", "part", alt.Tooltip("MB:Q", format=".0f")],
    ).properties(height=ROW)


def summary_table(results: list[dict], names: dict[tuple, str] | None = None) -> pd.DataFrame:
    """The results as a readable table for the page: every shown metric of ``core.metrics.METRICS`` (the
    statistics it names for a distribution; units in the column names; rounded for reading as its record says,
    the exports keep full precision), what decides first (speed, waits, memory, failures), the detail after it.
    ``names``: (model, engine) -> the name people read (the run's label), shown instead of the id."""
    rows = []
    names = names or {}
    for r in results:
        row = {"model": names.get((r["model"], r["backend"]), r["model"]), "engine": r["backend"],
               "concurrency": r["concurrency"], "status": r["status"],
               "ok": r["requests_ok"], "failed": r["requests_failed"]}
        row |= {m.column(s): m.value(r, s) for m in SHOWN for s in m.cells()}
        row["error"] = r["error"]
        rows.append(row)
    df = pd.DataFrame(rows)
    lead = [c for c in LEAD_COLUMNS if c in df.columns]
    df = df[lead + [c for c in df.columns if c not in lead]]
    digits = {m.column(s): m.digits for m in SHOWN for s in m.cells() if m.digits is not None}
    return df.round({c: n for c, n in digits.items() if c in df.columns})


def compare_runs(a: list[dict], b: list[dict], req_a: pd.DataFrame | None = None,
                 req_b: pd.DataFrame | None = None) -> pd.DataFrame:
    """Side by side: levels present in both runs, p50s of A and B, the change in %, and a bootstrap
    95% interval of the difference of mean TTFT (B - A) where the requests are given."""
    key = lambda r: (r["model"], r["backend"], r["concurrency"])  # noqa: E731
    bmap = {key(r): r for r in b}
    rows = []
    for ra in a:
        rb = bmap.get(key(ra))
        if rb is None:
            continue
        row = {"model": ra["model"], "engine": ra["backend"], "concurrency": ra["concurrency"]}
        for k, label in (("ttft_ms", "TTFT p50 (ms)"), ("itl_ms", "TPOT p50 (ms)"), ("e2e_ms", "E2E p50 (ms)")):
            va, vb = (ra[k] or {}).get("p50"), (rb[k] or {}).get("p50")
            row[f"A {label}"], row[f"B {label}"] = va, vb
            row[f"Δ {label} %"] = (vb - va) / va * 100 if va and vb is not None else None
        ta, tb = ra["throughput_tok_s"], rb["throughput_tok_s"]
        row["A aggregate throughput (tok/s)"], row["B aggregate throughput (tok/s)"] = ta, tb
        row["Δ aggregate throughput %"] = (tb - ta) / ta * 100 if ta and tb is not None else None
        if req_a is not None and req_b is not None and not req_a.empty and not req_b.empty:
            row["Δ mean TTFT 95% CI (ms)"] = _diff_ci(req_a, req_b, ra)
        rows.append(row)
    return pd.DataFrame(rows)


def _diff_ci(req_a: pd.DataFrame, req_b: pd.DataFrame, level: dict) -> str | None:
    def values(df):
        m = ok_requests(df)
        if m.empty:
            return []
        m = m[(m["model"] == level["model"]) & (m["backend"] == level["backend"]) & (m["concurrency"] == level["concurrency"])]
        return [v for v in m["ttft_ms"] if v == v]
    va, vb = values(req_a), values(req_b)
    if len(va) < 2 or len(vb) < 2:
        return None
    import numpy as np
    rng = np.random.default_rng(0)
    a, b = np.asarray(va), np.asarray(vb)
    diffs = rng.choice(b, (2000, b.size)).mean(1) - rng.choice(a, (2000, a.size)).mean(1)
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return f"[{lo:.1f}, {hi:.1f}]"


__all__ = ["latency_boxes", "latency_ecdf", "ttft_vs_speed", "prompt_heatmap", "throughput_vs_concurrency",
           "memory_stacked", "summary_table", "compare_runs", "bootstrap_ci"]
