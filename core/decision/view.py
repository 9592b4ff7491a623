"""Tables for the Decision and Present pages (pandas only; no Streamlit here)."""
from __future__ import annotations


import pandas as pd

from core.decision.export import CRITERION_TITLE, LATENCY_LABEL, _names, name_of
from core.decision.matrix import CRITERIA, CRITERION_KEY, PRESETS


def preset_percents(name: str) -> dict[str, int]:
    """A preset as whole percentages summing to 100 (for sliders)."""
    w = PRESETS[name]
    pct = {c: int(round(100 * w[c])) for c in CRITERIA}
    pct[max(pct, key=pct.get)] += 100 - sum(pct.values())
    return pct


def weights_from_percents(pct: dict[str, float]) -> dict[str, float] | None:
    """Slider values -> weights summing to 1; None when all are 0."""
    total = float(sum(max(0.0, float(pct.get(c, 0))) for c in CRITERIA))
    if total <= 0:
        return None
    return {c: max(0.0, float(pct.get(c, 0))) / total for c in CRITERIA}


def _cell(v, criterion: str) -> str:
    """A measured value as shown in the table: 'unknown' when there is none (never a blank or a 0)."""
    if v is None:
        return "unknown"
    if isinstance(v, str):
        return v
    return f"{v:.2f}" if criterion == "quality" else f"{v:.1f}"


def matrix_frame(result: dict) -> pd.DataFrame:
    """One row per candidate: rank, status, score, win probability, ties, measured and normalised values, reasons.

    Measured values are display strings ("unknown" where not measured); scores are numbers.
    """
    lat = LATENCY_LABEL.get(result.get("latency_metric"), "latency")
    recs = []
    for r in result.get("candidates", []):
        rec = {
            "rank": "-" if r["rank"] is None else str(r["rank"]),
            "candidate": name_of(r),
            "passes": r["passes"],
            "why not ranked": "; ".join(r["failed_constraints"]),
            "score": round(r["score"], 3),
            "win %": round(100 * r["win_probability"], 1),
            "too close to call with": _names(result, r["tie_with"]),
        }
        for c in CRITERIA:
            title = CRITERION_TITLE[c] if c != "latency" else f"{lat} (ms)"
            rec[title] = _cell(r["criteria"][CRITERION_KEY[c]], c)
            if c == "quality" and (r.get("quality_detail") or {}).get("verified") is False:
                rec[title] += " (unverified)"
        for c in CRITERIA:
            rec[f"{c} (norm.)"] = round(r["normalized"][CRITERION_KEY[c]], 2)
        rec["flags"] = "; ".join(r.get("flags", []))
        rec["details (id)"] = r["candidate"]
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


def flip_frame(result: dict) -> pd.DataFrame:
    recs = []
    for c in CRITERIA:
        f = (result.get("flip_details") or {}).get(c)
        recs.append({
            "weight": c,
            "now %": round(100 * result["weights"][c], 1),
            "winner changes at": "never" if not f else f"{100 * f['value']:.1f}%",
            "direction": "" if not f else f["direction"],
            "new winner": "" if not f else _names(result, [f["new_winner"]]),
        })
    return pd.DataFrame.from_records(recs)


def ties_lines(result: dict) -> list[str]:
    """"A is too close to call with B, C" for each ranked candidate with ties (each pair once)."""
    seen, out = set(), []
    for r in result.get("candidates", []):
        others = [t for t in r["tie_with"] if (t, r["candidate"]) not in seen]
        for t in others:
            seen.add((r["candidate"], t))
        if others:
            out.append(f"{name_of(r)} is too close to call with {_names(result, others)}")
    return out


DECIDING = (("latency", "Latency"), ("decode_speed", "Decode speed"), ("memory", "Peak memory"),
            ("quality", "Quality"), ("disk", "Disk"), ("license", "License"))


def runner_up(result: dict) -> dict | None:
    """The candidate next to the winner: the best other ranked one, else the best other one."""
    rows = [r for r in result.get("candidates", []) if r["candidate"] != result.get("winner")]
    ranked = [r for r in rows if r["rank"] is not None]
    return (ranked or rows or [None])[0]


def deciding_numbers(result: dict) -> pd.DataFrame:
    """The numbers that decided it, winner beside runner-up: latency, decode speed, peak memory, quality, disk,
    license. Rows are criteria (with units), columns the two candidates' names; 'no data' where unmeasured."""
    lat = LATENCY_LABEL.get(result.get("latency_metric"), "latency")
    rows = result.get("candidates", [])
    top = next((r for r in rows if r["candidate"] == result.get("winner")), None)
    cols = [r for r in (top, runner_up(result)) if r is not None]
    index = []
    for c, title in DECIDING:
        unit = {"latency": f"{lat}, ms", "decode_speed": "tok/s", "memory": "MB", "quality": "0..1",
                "disk": "MB"}.get(c)
        index.append(f"{title} ({unit})" if unit else title)
    data = {}
    for r in cols:
        vals = []
        for c, _ in DECIDING:
            v = r["criteria"][CRITERION_KEY[c]]
            vals.append("no data" if v is None else (v if isinstance(v, str) else
                        (f"{v:.2f}" if c == "quality" else f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}")))
        head = ("Recommended: " if r is top else "Runner-up: " if r["rank"] is not None
                else "Next best (not ranked): ") + name_of(r)
        data[head] = vals
    weights = result.get("weights", {})
    data["weight"] = [f"{100 * weights.get(c, 0):.0f}%" for c, _ in DECIDING]
    return pd.DataFrame(data, index=index)


FLEET_VALUE = {"latency": None, "decode_speed": "decode_tokens_per_s", "memory": "peak_rss_mb", "quality": "quality",
               "disk": "disk_mb"}


def fleet_frame(result: dict) -> pd.DataFrame:
    """The fleet decision's per-device breakdown: one row per candidate and target device, with that device's
    values, the criteria it decided (worst device), the constraints it decided and what fails there.

    Empty for an ordinary (single-device) result."""
    lat_key = f"{result.get('latency_metric', 'e2e_p95')}_ms"
    lat = LATENCY_LABEL.get(result.get("latency_metric"), "latency")
    agg = result.get("aggregation") or {}
    recs = []
    for r in result.get("candidates", []):
        if "devices" not in r:
            continue
        decided = r.get("decided_by") or {}
        cons = r.get("constraint_devices") or {}
        # a criterion equal on every device is decided by none of them (the worst is then any one)
        spread = {c for c, key in FLEET_VALUE.items()
                  if len({(d.get("metrics") or {}).get(key or lat_key) for d in (r["devices"] or {}).values() if d}) > 1}
        for dev in result.get("devices") or list(r["devices"]):
            d = (r["devices"] or {}).get(dev)
            m = (d or {}).get("metrics") or {}
            rec = {"candidate": name_of(r), "device": dev, "run": d["run_id"] if d else "not benchmarked"}
            # what the device decided first (the point of the table), then its values
            rec["decides"] = ", ".join(f"{c} ({agg.get(c, 'worst')})" for c in FLEET_VALUE
                                       if c in spread and decided.get(CRITERION_KEY[c]) == dev)
            rec["decides constraints"] = "; ".join(
                f"{text}: {'holds' if v.get('holds') else 'FAILS'}" for text, v in cons.items() if v.get("device") == dev)
            rec["fails here"] = "not benchmarked on this device" if not d else "; ".join(d.get("failed_constraints") or [])
            for c, key in FLEET_VALUE.items():
                title = CRITERION_TITLE[c] if c != "latency" else f"{lat} (ms)"
                rec[title] = _cell(m.get(key or lat_key), c) if d else "unknown"
            rec["details (id)"] = r["candidate"]
            recs.append(rec)
    return pd.DataFrame.from_records(recs)
