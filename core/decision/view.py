"""Tables for the Decision and Present pages (pandas only; no Streamlit here), laid out from the report view."""
from __future__ import annotations

import pandas as pd

from core.decision import report
from core.decision.criteria import CRITERIA, NAMES, UNKNOWN
from core.decision.engine import as_document
from core.decision.matrix import PRESETS


def preset_percents(name: str) -> dict[str, int]:
    """A preset as whole percentages summing to 100 (for sliders); a criterion it does not name is 0."""
    w = PRESETS[name]
    pct = {c: int(round(100 * w.get(c, 0.0))) for c in NAMES}
    pct[max(pct, key=pct.get)] += 100 - sum(pct.values())
    return pct


def weights_from_percents(pct: dict[str, float]) -> dict[str, float] | None:
    """Slider values -> weights summing to 1; None when all are 0."""
    total = float(sum(max(0.0, float(pct.get(c, 0))) for c in NAMES))
    if total <= 0:
        return None
    return {c: max(0.0, float(pct.get(c, 0))) / total for c in NAMES}


def matrix_frame(result) -> pd.DataFrame:
    """One row per candidate: rank, status, score, win probability, ties, measured and normalised values, reasons.

    Measured values are display strings ("unknown" where not measured); scores are numbers.
    """
    v = report.build(result)
    res = as_document(result)
    weights = res.get("weights") or {}
    recs = []
    for r in v.rows:
        s = r.source
        # what decides first: rank, name, score and the weighted criteria, heaviest first; why a row is not ranked
        # next to them; the criteria that weigh nothing, the normalised values and the id after (a 1,400 px page
        # shows the first)
        rec = {"rank": r.rank, "candidate": r.name, "score": round(s["score"], 3),
               "win %": round(100 * s["win_probability"], 1)}
        cells = list(zip(v.headings, r.cells))
        for h, c in sorted(cells, key=lambda hc: -weights.get(hc[1].criterion.name, 0)):   # heaviest first
            if weights.get(c.criterion.name, 0) > 0:
                rec[h] = c.value
        rec["why not ranked"] = r.failed
        rec["too close to call with"] = r.ties
        for h, c in cells:
            if h not in rec:
                rec[h] = c.value
        rec["passes"] = r.passes
        for c in r.cells:
            rec[f"{c.criterion.name} (norm.)"] = round(s["normalized"][c.criterion.key], 2)
        rec["flags"] = "; ".join(r.flags)
        rec["details (id)"] = r.id
        recs.append(rec)
    return pd.DataFrame.from_records(recs)


def style_matrix(df: pd.DataFrame):
    """Failing rows greyed (a pandas Styler)."""
    if df.empty:
        return df

    def grey(row):
        return ["color: #9e9e9e; background-color: #f5f5f5" if not row["passes"] else "" for _ in row]

    fmt = {c: "{:.2f}" for c in df.columns if c.endswith("(norm.)")}
    fmt.update({"score": "{:.3f}", "win %": "{:.1f}"})
    return df.style.apply(grey, axis=1).format(fmt)


def flip_frame(result) -> pd.DataFrame:
    v = report.build(result)
    return pd.DataFrame.from_records([
        {"weight": f.criterion, "now %": f.now, "winner changes at": f.at, "direction": f.direction,
         "new winner": f.new_winner} for f in v.flips])


def ties_lines(result) -> list[str]:
    """"A is too close to call with B, C" for each ranked candidate with ties (each pair once)."""
    res = as_document(result)
    seen, out = set(), []
    for r in res.get("candidates", []):
        others = [t for t in r["tie_with"] if (t, r["candidate"]) not in seen]
        for t in others:
            seen.add((r["candidate"], t))
        if others:
            out.append(f"{report.name_of(r)} is too close to call with {report.names(res, others)}")
    return out


def runner_up(result) -> dict | None:
    """The candidate next to the winner: the best other ranked one, else the best other one."""
    rows = [r for r in result.get("candidates", []) if r["candidate"] != result.get("winner")]
    ranked = [r for r in rows if r["rank"] is not None]
    return (ranked or rows or [None])[0]


def deciding_numbers(result) -> pd.DataFrame:
    """The numbers that decided it, winner beside runner-up, one row per criterion (heading with its unit),
    columns the two candidates' names and the weight; "unknown" where unmeasured."""
    v = report.build(result)
    top = next((r for r in v.rows if r.winner), None)
    nxt = runner_up(as_document(result))
    cols = [r for r in (top, v.row(nxt["candidate"]) if nxt else None) if r is not None]
    data = {}
    for r in cols:
        head = ("Recommended: " if r is top else "Runner-up: " if r.source.get("rank") is not None
                else "Next best (not ranked): ") + r.name
        data[head] = [c.value for c in r.cells]
    data["weight"] = [w for _, w in v.weights]
    return pd.DataFrame(data, index=v.headings)


def fleet_frame(result) -> pd.DataFrame:
    """The fleet decision's per-device breakdown: one row per candidate and target device, with that device's
    values, the criteria it decided (worst device), the constraints it decided and what fails there.

    Empty for an ordinary (single-device) result."""
    res = as_document(result)
    lm = res.get("latency_metric", "e2e_p95")
    agg = res.get("aggregation") or {}
    crits = [c for c in CRITERIA if c.aggregate]
    recs = []
    for r in res.get("candidates", []):
        if "devices" not in r:
            continue
        decided = r.get("decided_by") or {}
        cons = r.get("constraint_devices") or {}
        devs = r["devices"] or {}
        # a criterion equal on every device is decided by none of them (the worst is then any one)
        spread = {c.name for c in crits
                  if len({(d.get("metrics") or {}).get(c.metric) for d in devs.values() if d}) > 1}
        for dev in res.get("devices") or list(devs):
            d = devs.get(dev)
            m = (d or {}).get("metrics") or {}
            rec = {"candidate": report.name_of(r), "device": dev, "run": d["run_id"] if d else "not benchmarked"}
            # what the device decided first (the point of the table), then its values
            rec["decides"] = ", ".join(f"{c.name} ({agg.get(c.name, 'worst')})" for c in crits
                                       if c.name in spread and decided.get(c.key) == dev)
            rec["decides constraints"] = "; ".join(
                f"{text}: {'holds' if x.get('holds') else 'FAILS'}" for text, x in cons.items() if x.get("device") == dev)
            rec["fails here"] = "not benchmarked on this device" if not d else "; ".join(d.get("failed_constraints") or [])
            for c in crits:
                rec[report.heading(c, lm)] = c.fmt(m.get(c.metric)) if d else UNKNOWN
            rec["details (id)"] = r["candidate"]
            recs.append(rec)
    return pd.DataFrame.from_records(recs)




# Where a criterion's numbers come from, for the note on a weighted criterion nobody has measured.
WHERE_MEASURED = {
    "time_to_notes": "a length sweep (Benchmark page, mode Lengths) of these models",
    "quality": "scores on the Quality page (automatic checks, the judge, or people)",
    "energy": "a benchmark run on a machine that reports energy",
}


def unmeasured_weights(result) -> list[str]:
    """One line per criterion that has weight but no measured value for any candidate: its weight then
    separates nobody, and the line says what would measure it."""
    res = as_document(result)
    weights = res.get("weights") or {}
    rows = res.get("candidates") or []
    out = []
    for c in CRITERIA:
        w = weights.get(c.name, 0)
        if w <= 0 or not rows:
            continue
        if all((r.get("criteria") or {}).get(c.key) is None for r in rows):
            where = WHERE_MEASURED.get(c.name, "a measurement of it")
            out.append(f"{c.title} weighs {100 * w:.0f}% but is {UNKNOWN} for every candidate, so it decides "
                       f"nothing yet: it comes from {where}.")
    return out
