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

from core.decision import report
from core.decision.criteria import CRITERIA, UNKNOWN
from core.errors import UserError
from core.output import _jsonable, csv_row, html_text, md_text, script_body, script_json


def _result(record_or_result):
    res = record_or_result.get("result", record_or_result) if isinstance(record_or_result, dict) else record_or_result
    return res.to_dict() if hasattr(res, "to_dict") else res


def csv_text(record_or_result) -> str:
    """One row per candidate: the measured values raw (blank when unknown), the normalised ones, the texts."""
    v = report.build(_result(record_or_result))
    buf = io.StringIO()
    keys = [c.key for c in CRITERIA]
    w = csv.writer(buf)
    w.writerow(["name", "candidate", "model", "backend", "run_id", "rank", "score", "win_probability", "passes",
                "failed_constraints", "tie_with"] + keys + [f"normalized_{k}" for k in keys] + ["flags", "quality_status"])
    for r in v.rows:
        s = r.source
        w.writerow(csv_row([r.name, r.id, s["model"], s["backend"], s["run_id"],
                    s["rank"] if s["rank"] is not None else "",   # not ranked: blank (see passes, failed_constraints)
                    f"{s['score']:.6f}", f"{s['win_probability']:.4f}", r.passes, r.failed, "; ".join(s["tie_with"])]
                   + ["" if c.raw is None else c.raw for c in r.cells]
                   + [f"{s['normalized'][k]:.6f}" for k in keys] + ["; ".join(r.flags), r.quality_status]))
    return buf.getvalue()


def json_text(record: dict) -> str:
    rec = dict(record)
    if "result" in rec:
        rec["result"] = _result(rec)
    return json.dumps(_jsonable(rec), indent=2, default=str) + "\n"


def markdown_text(record: dict) -> str:
    v = report.build(_result(record))
    lines = [f"# Decision: {md_text(record['name'])}", ""]
    if record.get("created_at"):
        lines += [f"Saved {md_text(record['created_at'])}. Runs: {md_text(', '.join(record['run_ids']))}.", ""]
    if v.winner:
        lines += [f"**Recommendation: {md_text(v.winner_label)}**", ""]
    lines += [f"- {md_text(x)}" for x in v.summary] + [""]
    notes = [md_text(line) or "" for line in (record.get("notes") or "(none)").splitlines()]
    lines += ["## Notes", "", "  \n".join(notes), ""]
    lines += ["## Weights and constraints", ""]
    lines += ["| criterion | weight |", "|---|---|"]
    lines += [f"| {name} | {w} |" for name, w in v.weights]
    lines += ["", f"Latency is {v.latency_label}. Constraints: {md_text(v.constraints)}"
              + ("; commercial use required." if v.commercial else "."), ""]
    lines += [f"How scores are computed: {md_text(v.explanation)}", ""]
    lines += ["## Matrix", ""]
    head = ["rank", "candidate", "status", "score", "win prob."] + v.headings + ["id"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in v.rows:
        cells = [r.rank, r.name, r.status, r.score, r.win] + [f"{c.value} ({c.norm})" for c in r.cells] + [r.id]
        lines.append("| " + " | ".join(md_text(x) for x in cells) + " |")
    lines += ["", "Each cell: measured value (normalised 0..1, 1 best).", ""]
    flagged = [(r.name, f) for r in v.rows for f in r.flags]
    if flagged:
        lines += ["## Flags", ""] + [f"- {md_text(c)}: {md_text(f)}" for c, f in flagged] + [""]
    lines += ["## Flip points", "", "| weight | now | top choice changes at | new winner |", "|---|---|---|---|"]
    for f in v.flips:
        lines.append(f"| {f.criterion} | {f.now} | {f.at} | {md_text(f.new_winner)} |")
    lines += ["", "## Runs", ""]
    for rid, ctx in (record.get("context") or {}).get("runs", {}).items():
        lines.append(f"- {md_text(rid)}: {md_text(_context_line(ctx))}")
    lines.append("")
    return "\n".join(lines)


def _context_line(ctx: dict) -> str:
    env = ctx.get("environment") or {}
    parts = [f"prompt set {ctx.get('prompt_set') or UNKNOWN} (sha256 {str(ctx.get('prompt_set_hash') or UNKNOWN)[:12]})"]
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


def html_report(record: dict) -> str:
    """One self-contained HTML page: no network request of any kind when opened."""
    from core.decision.charts import chart_specs

    e = html_text
    res = _result(record)
    v = report.build(res)
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
    if v.winner:
        out.append(f"<p class=\"lead\"><strong>Recommendation: {e(v.winner_label)}</strong></p>")
    out += [f"<p class=\"lead\">{e(s)}</p>" for s in v.summary]
    out.append("<h2>Notes</h2>")
    out.append(f"<div class=\"notes\">{e(record.get('notes') or '(none)')}</div>")
    out.append("<h2>Weights and constraints</h2><table><tr>" + "".join(f"<th>{e(n)}</th>" for n, _ in v.weights)
               + "</tr><tr>" + "".join(f"<td>{e(w)}</td>" for _, w in v.weights) + "</tr></table>")
    out.append(f"<p>Latency is {e(v.latency_label)}. Constraints: {e(v.constraints)}"
               + ("; commercial use required." if v.commercial else ".") + "</p>")
    out.append(f"<p>{e(v.explanation)}</p>")
    out.append("<h2>Matrix</h2><table><tr><th>rank</th><th>candidate</th><th>status</th><th>score</th><th>win prob.</th>"
               + "".join(f"<th>{e(h)}</th>" for h in v.headings) + "<th>flags</th><th>id</th></tr>")
    for r in v.rows:
        cls = "fail" if not r.passes else ("win" if r.winner else "")
        tds = "".join(f"<td>{e(x)}</td>" for x in (r.rank, r.name, r.status, r.score, r.win))
        tds += "".join(f"<td>{e(c.value)} <span class=\"norm\">({e(c.norm)})</span></td>" for c in r.cells)
        tds += f"<td>{e('; '.join(r.flags))}</td><td class=\"norm\">{e(r.id)}</td>"
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
    for f in v.flips:
        out.append(f"<tr><td>{e(f.criterion)}</td><td>{e(f.now)}</td><td>{e(f.at)}</td><td>{e(f.new_winner)}</td></tr>")
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
    writers = {".md": markdown_text, ".markdown": markdown_text, ".html": html_report, ".htm": html_report,
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
