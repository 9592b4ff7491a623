"""Altair charts of a decision (the `evaluate` result): Pareto front, weighted score bars, win probability.

Each function returns an Altair chart; `chart_specs` gives the Vega-Lite dicts (data inline) for reports.
"""
from __future__ import annotations

import altair as alt
import pandas as pd

from core.bench.charts import LABEL_LIMIT
from core.decision.criteria import CRITERIA, NAMES
from core.decision.engine import as_document

LICENSE_OK = "license OK"
LICENSE_NOT_OK = "license not OK"


def license_ok(row: dict) -> bool:
    """Known license that allows commercial use (possibly with conditions) and meets the license constraints."""
    info = row.get("license_info") or {}
    if not info.get("known") or info.get("commercial_use") not in (True, "conditional"):
        return False
    return not any(r.startswith("license") for r in row.get("failed_constraints", []))


BAR_WIDTH = 440     # plot width of the bar charts: labels + bars + legend fit a laptop's page


def _label(row: dict, rows: list[dict]) -> str:
    """The name people read: display name and engine (one candidate per model x engine x device)."""
    short = row.get("label") or f"{row['model']} ({row['backend']})"
    if sum(1 for r in rows if (r.get("label") or f"{r['model']} ({r['backend']})") == short) > 1:
        short += f" {row['run_id']}"
    return short


def frame(result) -> pd.DataFrame:
    rows = as_document(result).get("candidates", [])
    recs = []
    for r in rows:
        c = r["criteria"]
        recs.append({
            "candidate": _label(r, rows),
            "id": r["candidate"],
            "latency_ms": c["latency_ms"],
            "quality": c["quality"],
            "peak_rss_mb": c["peak_rss_mb"],
            "license": c["license"],
            "license_ok": LICENSE_OK if license_ok(r) else LICENSE_NOT_OK,
            "score": r["score"],
            "rank": r["rank"],
            "passes": "passes" if r["passes"] else "fails a constraint",
            "win_probability": r["win_probability"],
            "pareto": r.get("pareto", False),
        })
    return pd.DataFrame.from_records(recs, columns=[
        "candidate", "id", "latency_ms", "quality", "peak_rss_mb", "license", "license_ok", "score", "rank",
        "passes", "win_probability", "pareto"])


def pareto_chart(result) -> alt.Chart:
    result = as_document(result)
    df = frame(result)
    metric = "TTFT p95" if result.get("latency_metric") == "ttft_p95" else "E2E p95"
    known = df.dropna(subset=["latency_ms", "quality"])
    hidden = len(df) - len(known)
    subtitle = ["Bubble size: peak memory (MB). Line: the Pareto front (nothing is both faster and better).",
                "Both axes start at 0, so distances compare as ratios."]
    if hidden:
        subtitle.append(f"{hidden} candidate(s) without a quality score or latency are not shown.")
    width, height = 560, 360
    x_max = float(known["latency_ms"].max()) * 1.15 if len(known) and known["latency_ms"].max() > 0 else 1.0
    placed = place_labels(known, x_max, width, height)
    dropped = [name for name in known["candidate"] if name not in set(placed["candidate"])]
    if dropped:
        subtitle.append(f"Name left off where it would cover another: {', '.join(dropped)} (hover the bubble).")
    base = alt.Chart(known)
    points = base.mark_circle(opacity=0.75, stroke="#333", strokeWidth=0.5).encode(
        x=alt.X("latency_ms:Q", title=f"Latency, {metric} (ms), lower is better",
                scale=alt.Scale(domain=[0, x_max], nice=False)),
        y=alt.Y("quality:Q", title="Quality (0..1), higher is better", scale=alt.Scale(domain=[0, 1])),
        size=alt.Size("peak_rss_mb:Q", title="Peak memory (MB)", scale=alt.Scale(range=[80, 1500])),
        color=alt.Color("license_ok:N", title="License",
                        scale=alt.Scale(domain=[LICENSE_OK, LICENSE_NOT_OK], range=["#2e7d32", "#c62828"])),
        tooltip=["candidate:N", "latency_ms:Q", "quality:Q", "peak_rss_mb:Q", "license:N", "passes:N"],
    )
    front = base.transform_filter("datum.pareto").mark_line(color="#555", strokeDash=[4, 3]).encode(
        x="latency_ms:Q", y="quality:Q", order="latency_ms:Q")
    labels = [alt.Chart(placed[placed["align"] == align]).mark_text(align=align, baseline="middle", fontSize=12)
              .encode(x="label_x:Q", y="label_y:Q", text="candidate:N") for align in ("left", "right")]
    return _pad(alt.layer(front, points, *labels)).properties(
        title=alt.Title("Quality against latency", subtitle=subtitle), width=width, height=height)


LABEL_FONT_PX = (7.0, 15.0)   # a character's width and a line's height at font size 12 (generous)
# where a name may go around its bubble, in pixels (dx, dy; y down), in order of preference
LABEL_SPOTS = ((12, -12), (12, 14), (-12, -12), (-12, 14), (12, -28), (12, 30), (-12, -28), (-12, 30))


def place_labels(known: pd.DataFrame, x_max: float, width: int, height: int) -> pd.DataFrame:
    """Each candidate's name beside its bubble where it covers no other name and stays inside the plot (the
    first free spot of LABEL_SPOTS); a name with no free spot is left off. Columns: candidate, label_x,
    label_y (data units), align. The x scale is [0, x_max] and the y scale [0, 1], both exact."""
    cw, lh = LABEL_FONT_PX
    boxes: list[tuple[float, float, float, float]] = []
    out = []
    for _, row in known.sort_values(["latency_ms", "quality"]).iterrows():
        px, py = float(row["latency_ms"]) / x_max * width, (1.0 - float(row["quality"])) * height
        w = cw * len(str(row["candidate"]))
        for dx, dy in LABEL_SPOTS:
            x0 = px + dx if dx > 0 else px + dx - w
            box = (x0, py + dy - lh / 2, x0 + w, py + dy + lh / 2)
            inside = box[0] >= 0 and box[2] <= width and box[1] >= -lh and box[3] <= height + lh
            if inside and not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
                boxes.append(box)
                out.append({"candidate": row["candidate"], "label_x": (px + dx) / width * x_max,
                            "label_y": 1.0 - (py + dy) / height, "align": "left" if dx > 0 else "right"})
                break
    return pd.DataFrame.from_records(out, columns=["candidate", "label_x", "label_y", "align"])


def score_chart(result) -> alt.Chart:
    result = as_document(result)
    rows = result.get("candidates", [])
    recs = []
    for r in rows:
        for c in CRITERIA:
            recs.append({
                "candidate": _label(r, rows),
                "criterion": c.name,
                "weighted score": r["contributions"].get(c.key, 0.0),
                "normalized": r["normalized"].get(c.key, 0.0),
                "weight": result["weights"].get(c.name, 0.0),
                "total": r["score"],
                "status": "passes" if r["passes"] else "fails a constraint",
            })
    df = pd.DataFrame.from_records(recs, columns=["candidate", "criterion", "weighted score", "normalized", "weight",
                                                  "total", "status"])
    order = [_label(r, rows) for r in rows]  # already ranked
    return _pad(alt.Chart(df)).mark_bar().encode(
        y=alt.Y("candidate:N", sort=order, title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        x=alt.X("sum(weighted score):Q", title="Weighted score (0..1)", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("criterion:N", sort=list(NAMES), title="Criterion"),
        order=alt.Order("criterion_order:Q"),
        opacity=alt.Opacity("status:N", scale=alt.Scale(domain=["passes", "fails a constraint"], range=[1.0, 0.3]),
                            title="Constraints"),
        tooltip=["candidate:N", "criterion:N", alt.Tooltip("weighted score:Q", format=".3f"),
                 alt.Tooltip("normalized:Q", format=".2f"), alt.Tooltip("weight:Q", format=".0%"),
                 alt.Tooltip("total:Q", format=".3f"), "status:N"],
    ).transform_calculate(
        criterion_order="indexof(" + repr(list(NAMES)).replace("'", '"') + ", datum.criterion)"
    ).properties(title="Weighted score by criterion (greyed: fails a constraint)", width=BAR_WIDTH,
                 height=max(200, 28 * len(order)))


def win_chart(result) -> alt.Chart:
    result = as_document(result)
    df = frame(result)
    df = df[df["passes"] == "passes"]
    samples = (result.get("robustness") or {}).get("samples", 0)
    return _pad(alt.Chart(df)).mark_bar(color="#1565c0").encode(
        y=alt.Y("candidate:N", sort="-x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        x=alt.X("win_probability:Q", title="Win probability", scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%")),
        tooltip=["candidate:N", alt.Tooltip("win_probability:Q", format=".1%")],
    ).properties(title=alt.Title("How often each candidate wins",
                                 subtitle=f"{samples:,} weight draws around the chosen weights (Dirichlet)"),
                 width=BAR_WIDTH, height=max(80, 28 * len(df)))


def tradeoff_chart(result: dict) -> alt.Chart:
    """The one chart for a meeting: quality against latency when at least two candidates have both, else the
    weighted score by criterion."""
    known = frame(result).dropna(subset=["latency_ms", "quality"])
    return pareto_chart(result) if len(known) >= 2 else score_chart(result)


def _pad(chart):
    """Plot area of the size asked, legends and titles around it (Streamlit otherwise fits all into the height)."""
    return chart.properties(autosize=alt.AutoSizeParams(type="pad"))


CHARTS = {"pareto": pareto_chart, "scores": score_chart, "win": win_chart}


def chart_specs(result: dict) -> dict[str, dict]:
    """{name: Vega-Lite spec with its data inline}."""
    return {name: f(result).to_dict() for name, f in CHARTS.items()}
