"""Exports of a decision record: Markdown, one self-contained HTML file (charts inside, opens offline), CSV, JSON.

The HTML embeds the Vega-Lite specs and the vega, vega-lite and vega-embed JavaScript shipped inside the
`vl-convert-python` wheel (`vl_convert.javascript_bundle`), so it loads nothing from the network. If that
package is missing, the charts are left out and the report says so.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import re
from pathlib import Path

from core.decision.matrix import CRITERIA, CRITERION_KEY
from core.errors import UserError
from core.output import _jsonable, csv_row, md_text, script_body, script_json
from core.output import html_text as escape_html

LATENCY_LABEL = {"e2e_p95": "E2E p95", "ttft_p95": "TTFT p95"}
CRITERION_TITLE = {
    "latency": "Latency (ms)",
    "decode_speed": "Decode speed (tok/s per request, 1/TPOT)",
    "memory": "Peak memory (MB)",
    "quality": "Quality (0..1)",
    "disk": "Disk (MB)",
    "license": "License",
}


def _fmt(v, key: str = "") -> str:
    if v is None:
        return "unknown"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if key == "quality":
            return f"{v:.2f}"
        return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"


def name_of(row: dict) -> str:
    """What people read for a candidate: its display name and engine (the id in older records)."""
    return row.get("label") or row["candidate"]


def _names(res: dict, ids) -> str:
    by_id = {r["candidate"]: name_of(r) for r in res.get("candidates", [])}
    return ", ".join(by_id.get(i, i) for i in ids)


def _status(row: dict, res: dict | None = None) -> str:
    if not row["passes"]:
        return "not ranked: " + "; ".join(row["failed_constraints"])
    ties = _names(res, row["tie_with"]) if res else ", ".join(row["tie_with"])
    return f"rank {row['rank']}" + (f" (too close to call with {ties})" if row["tie_with"] else "")


CLEAR, LIKELY, CLOSE = "Clear winner", "Likely", "Too close to call"
LIKELY_AT, CLEAR_AT = 0.6, 0.9    # win probability from which a winner is "likely" / "clear" (no tie)
FLIP_RANGE = 0.2                   # flip points further than 20 points from the chosen weight are not told


def certainty(result: dict) -> str | None:
    """One word for how sure the recommendation is: Clear winner, Likely, Too close to call (None: no winner)."""
    rows = result.get("candidates", [])
    top = next((r for r in rows if r["candidate"] == result.get("winner")), None)
    if top is None:
        return None
    if not [r for r in rows if r["passes"] and r is not top]:
        return CLEAR
    if top["tie_with"] or top["win_probability"] < LIKELY_AT:
        return CLOSE
    return CLEAR if top["win_probability"] >= CLEAR_AT else LIKELY


def verdict(result: dict) -> str:
    """How sure, in one plain sentence with one consistent word (see `certainty`)."""
    rows = result.get("candidates", [])
    word = certainty(result)
    if word is None:
        return "No recommendation: no candidate meets the constraints."
    top = next(r for r in rows if r["candidate"] == result["winner"])
    others = [r for r in rows if r["passes"] and r is not top]
    if not others:
        return f"{CLEAR}: {name_of(top)}, the only candidate that meets the constraints."
    runner = others[0]
    p = _pct(top["win_probability"])
    if word == CLOSE and top["tie_with"]:
        return (f"{CLOSE}: {name_of(top)} and {_names(result, top['tie_with'])} are within measurement noise of "
                f"each other; {name_of(top)} is ahead only on these numbers and weights.")
    if word == CLOSE:
        return (f"{CLOSE}: {name_of(top)} leads on the chosen weights, but comes first in only {p} of plausible "
                f"weightings ({name_of(runner)} is next).")
    if word == CLEAR:
        return (f"{CLEAR}: {name_of(top)}, ahead of {name_of(runner)} beyond measurement noise and first in {p} "
                "of plausible weightings.")
    return (f"{LIKELY}: {name_of(top)}, ahead of {name_of(runner)} beyond measurement noise and first in {p} of "
            "plausible weightings; the weights matter.")


def summary_lines(record: dict) -> list[str]:
    """Plain sentences about the outcome (shared by Markdown, HTML and the pages): the verdict, the nearby
    flip points, what cannot win, and the warnings about the runs."""
    res = record["result"]
    rows = res["candidates"]
    out = [verdict(res)]
    if res["winner"] is not None:
        near = {k: v for k, v in (res.get("flip_details") or {}).items()
                if v and abs(v["value"] - res["weights"][k]) <= FLIP_RANGE}
        for name, f in near.items():
            out.append(f"If the {name} weight went {'up' if f['direction'] == 'up' else 'down'} from "
                       f"{_pct(res['weights'][name])} to {_pct(f['value'])}, {_names(res, [f['new_winner']])} would "
                       "come first.")
        if not near:
            out.append(f"No single weight moved by up to {100 * FLIP_RANGE:.0f} points changes the recommendation.")
    failing = [r for r in rows if not r["passes"]]
    for r in failing[:5]:
        out.append(f"Not ranked: {name_of(r)}: {'; '.join(r['failed_constraints'])}.")
    if len(failing) > 5:
        out.append(f"{len(failing) - 5} more candidate(s) are not ranked: see the reasons in the table.")
    out += [f"Warning: {w}" for w in res.get("warnings", [])]
    return out


def csv_text(record_or_result: dict) -> str:
    res = record_or_result.get("result", record_or_result)
    buf = io.StringIO()
    keys = [CRITERION_KEY[c] for c in CRITERIA]
    w = csv.writer(buf)
    w.writerow(["name", "candidate", "model", "backend", "run_id", "rank", "score", "win_probability", "passes",
                "failed_constraints", "tie_with"] + keys + [f"normalized_{k}" for k in keys] + ["flags", "quality_status"])
    for r in res["candidates"]:
        w.writerow(csv_row([name_of(r), r["candidate"], r["model"], r["backend"], r["run_id"],
                    r["rank"] if r["rank"] is not None else "",   # not ranked: blank (see passes, failed_constraints)
                    f"{r['score']:.6f}", f"{r['win_probability']:.4f}", r["passes"],
                    "; ".join(r["failed_constraints"]), "; ".join(r["tie_with"])]
                   + ["" if r["criteria"][k] is None else r["criteria"][k] for k in keys]
                   + [f"{r['normalized'][k]:.6f}" for k in keys] + ["; ".join(r.get("flags", [])), _quality_status(r)]))
    return buf.getvalue()


def _quality_status(row: dict) -> str:
    """"unverified" when the quality rests on a judge below the trust gate, "verified", or "" when unknown."""
    q = row.get("quality_detail") or {}
    if not q:
        return ""
    return "unverified" if q.get("verified") is False else "verified"


def json_text(record: dict) -> str:
    return json.dumps(_jsonable(record), indent=2, default=str) + "\n"


def markdown_text(record: dict) -> str:
    res = record["result"]
    lat = LATENCY_LABEL.get(res["latency_metric"], res["latency_metric"])
    lines = [f"# Decision: {md_text(record['name'])}", ""]
    if record.get("created_at"):
        lines += [f"Saved {md_text(record['created_at'])}. Runs: {md_text(', '.join(record['run_ids']))}.", ""]
    if res.get("winner"):
        lines += [f"**Recommendation: {md_text(res.get('winner_label') or res['winner'])}**", ""]
    lines += [f"- {md_text(x)}" for x in summary_lines(record)] + [""]
    notes = [md_text(line) or "" for line in (record.get("notes") or "(none)").splitlines()]
    lines += ["## Notes", "", "  \n".join(notes), ""]
    lines += ["## Weights and constraints", ""]
    lines += ["| criterion | weight |", "|---|---|"]
    lines += [f"| {c} | {_pct(res['weights'][c])} |" for c in CRITERIA]
    lines += ["", f"Latency is {lat}. Constraints: "
              + (", ".join(md_text(c) for c in res["constraints"]) or "none")
              + ("; commercial use required." if res["require_commercial"] else "."), ""]
    lines += [f"How scores are computed: {md_text(res['explanation'])}", ""]
    lines += ["## Matrix", ""]
    head = ["rank", "candidate", "status", "score", "win prob."] + [CRITERION_TITLE[c] for c in CRITERIA] + ["id"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["candidates"]:
        cells = [_rank(r), name_of(r), _status(r, res), f"{r['score']:.3f}", _pct(r["win_probability"])]
        cells += [f"{_fmt(r['criteria'][CRITERION_KEY[c]], c)} ({r['normalized'][CRITERION_KEY[c]]:.2f})"
                  + (" unverified" if c == "quality" and _quality_status(r) == "unverified" else "") for c in CRITERIA]
        cells.append(r["candidate"])
        lines.append("| " + " | ".join(md_text(x) for x in cells) + " |")
    lines += ["", "Each cell: measured value (normalised 0..1, 1 best).", ""]
    flagged = [(name_of(r), f) for r in res["candidates"] for f in r.get("flags", [])]
    if flagged:
        lines += ["## Flags", ""] + [f"- {md_text(c)}: {md_text(f)}" for c, f in flagged] + [""]
    lines += ["## Flip points", "", "| weight | now | top choice changes at | new winner |", "|---|---|---|---|"]
    for c in CRITERIA:
        f = (res.get("flip_details") or {}).get(c)
        lines.append(f"| {c} | {_pct(res['weights'][c])} | {_pct(f['value']) if f else 'never'} | "
                     f"{md_text(_names(res, [f['new_winner']])) if f else ''} |")
    lines += ["", "## Runs", ""]
    for rid, ctx in (record.get("context") or {}).get("runs", {}).items():
        lines.append(f"- {md_text(rid)}: {md_text(_context_line(ctx))}")
    lines.append("")
    return "\n".join(lines)


def _rank(row: dict) -> str:
    return "-" if row.get("rank") is None else str(row["rank"])


def _context_line(ctx: dict) -> str:
    env = ctx.get("environment") or {}
    parts = [f"prompt set {ctx.get('prompt_set') or '?'} (sha256 {str(ctx.get('prompt_set_hash') or '?')[:12]})"]
    if isinstance(env, dict) and env:
        bits = []
        for key, label in (("cpu", ""), ("cpu_model", ""), ("cores_logical", " cores"), ("cores", " cores"),
                           ("ram_gb", " GB RAM"), ("os", ""), ("python", "")):
            if env.get(key):
                bits.append(("Python " if key == "python" else "") + f"{env[key]}{label}")
        if bits:
            parts.append("machine " + ", ".join(bits))
    if ctx.get("rubrics"):
        parts.append("rubric " + ", ".join(ctx["rubrics"]))
    judges = [f"{j.get('judge_model')} template {j.get('template_version')}" for j in ctx.get("judges") or []]
    if judges:
        parts.append("judge " + "; ".join(judges))
    return "; ".join(parts)


@functools.lru_cache(maxsize=4)
def _js_bundle(snippet: str) -> str | None:
    """The bundled JavaScript for `snippet` (constant: the data lives in its own JSON element)."""
    try:
        import vl_convert as vlc
    except ImportError:
        return None
    return vlc.javascript_bundle(snippet)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:2rem;margin-bottom:.2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;font-size:.9rem} th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4} tr.fail td{color:#999;background:#fafafa} tr.win td{background:#eef7ee;font-weight:600}
.norm{color:#777;font-size:.8em} .lead{font-size:1.15rem} .notes{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:.8rem}
.chart{margin:1rem 0} .muted{color:#777}
"""


def html_text(record: dict) -> str:
    """One self-contained HTML page: no network request of any kind when opened."""
    from core.decision.charts import chart_specs

    e = escape_html
    res = record["result"]
    lat = LATENCY_LABEL.get(res["latency_metric"], res["latency_metric"])
    specs = chart_specs(res)
    # The specs (holding model names) stay out of the bundled code: a JSON element, every '<', '>', '&'
    # escaped (script_json), read at load time; the bundle itself is constant vendor code.
    snippet = "const specs = JSON.parse(document.getElementById('decision-specs').textContent);\n" + \
        "for (const [name, spec] of Object.entries(specs)) {\n" \
        "  vegaEmbed('#chart-' + name, spec, {renderer: 'svg', actions: false})" \
        ".catch(err => { document.getElementById('chart-' + name).textContent = 'chart failed: ' + err; });\n}\n"
    bundle = _js_bundle(snippet)
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>Decision: {e(record['name'])}</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>Decision: {e(record['name'])}</h1>"]
    if record.get("created_at"):
        out.append(f"<p class=\"muted\">Saved {e(str(record['created_at']))}. Runs: {e(', '.join(record['run_ids']))}.</p>")
    if res.get("winner"):
        out.append(f"<p class=\"lead\"><strong>Recommendation: {e(res.get('winner_label') or res['winner'])}</strong></p>")
    out += [f"<p class=\"lead\">{e(s)}</p>" for s in summary_lines(record)]
    out.append("<h2>Notes</h2>")
    out.append(f"<div class=\"notes\">{e(record.get('notes') or '(none)')}</div>")
    out.append("<h2>Weights and constraints</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in CRITERIA)
               + "</tr><tr>" + "".join(f"<td>{_pct(res['weights'][c])}</td>" for c in CRITERIA) + "</tr></table>")
    cons = ", ".join(res["constraints"]) or "none"
    out.append(f"<p>Latency is {e(lat)}. Constraints: {e(cons)}"
               + ("; commercial use required." if res["require_commercial"] else ".") + "</p>")
    out.append(f"<p>{e(res['explanation'])}</p>")
    out.append("<h2>Matrix</h2><table><tr><th>rank</th><th>candidate</th><th>status</th><th>score</th><th>win prob.</th>"
               + "".join(f"<th>{e(CRITERION_TITLE[c])}</th>" for c in CRITERIA) + "<th>flags</th><th>id</th></tr>")
    for r in res["candidates"]:
        cls = "fail" if not r["passes"] else ("win" if r["candidate"] == res["winner"] else "")
        cells = [_rank(r), name_of(r), _status(r, res), f"{r['score']:.3f}", _pct(r["win_probability"])]
        tds = "".join(f"<td>{e(x)}</td>" for x in cells)
        tds += "".join(f"<td>{e(_fmt(r['criteria'][CRITERION_KEY[c]], c))} "
                       f"<span class=\"norm\">({r['normalized'][CRITERION_KEY[c]]:.2f})</span></td>" for c in CRITERIA)
        tds += f"<td>{e('; '.join(r.get('flags', [])))}</td><td class=\"norm\">{e(r['candidate'])}</td>"
        out.append(f"<tr class=\"{cls}\">{tds}</tr>")
    out.append("</table><p class=\"muted\">Each cell: measured value (normalised 0..1, 1 best). Greyed rows fail a "
               "constraint and cannot win.</p>")
    out.append("<h2>Charts</h2>")
    if bundle is None:
        out.append("<p class=\"muted\">Charts left out: the vl-convert-python package is not installed.</p>")
    for name in specs:
        out.append(f"<div class=\"chart\" id=\"chart-{e(name)}\"></div>")
    out.append("<h2>Flip points</h2><table><tr><th>weight</th><th>now</th><th>top choice changes at</th>"
               "<th>new winner</th></tr>")
    for c in CRITERIA:
        f = (res.get("flip_details") or {}).get(c)
        out.append(f"<tr><td>{e(c)}</td><td>{_pct(res['weights'][c])}</td><td>{_pct(f['value']) if f else 'never'}</td>"
                   f"<td>{e(_names(res, [f['new_winner']])) if f else ''}</td></tr>")
    out.append("</table><h2>Runs</h2><ul>")
    for rid, ctx in (record.get("context") or {}).get("runs", {}).items():
        out.append(f"<li>{e(rid)}: {e(_context_line(ctx))}</li>")
    out.append("</ul>")
    if bundle is not None:
        out.append(f"<script type=\"application/json\" id=\"decision-specs\">{script_json(specs)}</script>")
        out.append("<script type=\"module\">\n" + script_body(bundle) + "\n</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def file_stem(name: str) -> str:
    """A file name from a decision name: letters, digits, dash and underscore only."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60]
    return f"decision-{stem}" if stem else "decision"


def write_report(record: dict, path: str | Path) -> Path:
    """Write the report in the format the suffix names: .md, .html/.htm, .csv or .json."""
    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".md": markdown_text, ".markdown": markdown_text, ".html": html_text, ".htm": html_text,
               ".csv": csv_text, ".json": json_text}
    if suffix not in writers:
        raise UserError(f"cannot write a report to {path}: use a .md, .html, .csv or .json file name")
    text = writers[suffix](record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")   # CSV rows keep their CRLF on every OS
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
