"""The criterion table is the one definition: every writer shows every criterion with the table's heading,
unit and direction, and a new criterion is one record (a copy of core/ with one more record decides on it,
and a candidate without its metric reads "unknown", not 0)."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core.config import REPO_ROOT
from core.decision import criteria, engine, export, fleet, report, view
from core.decision.criteria import CRITERIA, UNKNOWN
from core.decision.matrix import Candidate, parse_constraint
from tests.support.store import migrated


def _cand(name, **extra) -> Candidate:
    rng = np.random.default_rng(len(name))
    e2e = 1000 + 100 * rng.standard_normal(12)
    q = extra.pop("q", 0.7)
    return Candidate(run_id="r", model=name, backend="openai", e2e_ms=e2e, ttft_ms=e2e / 10,
                     tpot_ms=20 + rng.standard_normal(12), peak_rss_mb=extra.pop("mem", 900.0), disk_mb=300.0,
                     license=extra.pop("lic", "mit"),
                     quality={"mean": q, "ci_low": q - 0.05, "ci_high": q + 0.05, "n": 10, "source": "human"},
                     extra_metrics=extra)


@pytest.fixture()
def record():
    result = engine.decide([_cand("a"), _cand("b", mem=1500.0, q=0.8), _cand("c", lic=None)], "balanced",
                           n_boot=20, n_samples=200)
    return {"name": "walk", "created_at": "now", "run_ids": ["r"], "notes": "", "result": result.to_dict(),
            "context": {"runs": {}}}


def test_every_writer_shows_every_criterion_with_its_heading(record):
    res = record["result"]
    headings = [report.heading(c, res["latency_metric"]) for c in CRITERIA]
    for c, h in zip(CRITERIA, headings):
        assert c.title in h and (c.unit == "" or f"({c.unit})" in h)
    # JSON: criteria, normalised values and contributions by key; weights and flip points by name
    doc = json.loads(export.json_text(record))["result"]
    for row in doc["candidates"]:
        for part in ("criteria", "normalized", "contributions"):
            assert list(row[part]) == [c.key for c in CRITERIA]
    assert list(doc["weights"]) == list(doc["flip_points"]) == [c.name for c in CRITERIA]
    # the page's table and the Present page's numbers
    frame = view.matrix_frame(res)
    assert all(h in frame.columns for h in headings)
    assert all(f"{c.name} (norm.)" in frame.columns for c in CRITERIA)
    assert list(view.deciding_numbers(res).index) == headings
    assert list(view.flip_frame(res)["weight"]) == [c.name for c in CRITERIA]
    # CSV: raw and normalised columns by key
    header = next(csv.reader(io.StringIO(export.csv_text(record))))
    assert all(c.key in header and f"normalized_{c.key}" in header for c in CRITERIA)
    # Markdown and HTML: the matrix headings, the weights and flip points by name
    md, html = export.markdown_text(record), export.html_report(record)
    for c, h in zip(CRITERIA, headings):
        assert f" {h} |" in md.replace("\\", "") and f"| {c.name} |" in md
        assert f"<th>{h}</th>" in html and f"<th>{c.name}</th>" in html and f"<td>{c.name}</td>" in html
    # one value, one text: what the table shows is what Markdown and HTML show
    v = report.build(res)
    for r in v.rows:
        for cell in r.cells:
            assert frame.loc[frame["details (id)"] == r.id, report.heading(cell.criterion, res["latency_metric"])
                             ].iloc[0] == cell.value
            assert f"<td>{cell.value} <span" in html


def test_cli_help_and_page_sliders_name_every_criterion(capsys, tmp_path, monkeypatch):
    from core.cli import main
    with pytest.raises(SystemExit):
        main(["decide", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for c in CRITERIA:
        assert c.name in out and c.direction in out
    from streamlit.testing.v1 import AppTest
    from tests.decision import fixture as fx
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "s.duckdb")))
    fx.add_run("run-a", fx.STANDARD, seed=1)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/decision.py")
    at.run()
    assert [s.key for s in at.slider] == [f"decision_w_{c.name}" for c in CRITERIA]


def _set(c, v) -> dict:
    return {"e2e_p95_ms" if c.metric == "latency_ms" else c.metric: v}


@pytest.mark.parametrize("c", [c for c in CRITERIA if not c.fixed_scale], ids=lambda c: c.name)
def test_direction_is_the_tables_in_the_matrix_the_fleet_and_the_explanation(c):
    lo, hi = _cand("lo", **_set(c, 10.0)), _cand("hi", **_set(c, 20.0))
    res = engine.decide([lo, hi], {c.name: 1.0}, n_boot=0, n_samples=50)
    norm = {r.model: r.normalized[c.key] for r in res.candidates}
    best, worst = ("hi", "lo") if c.higher_is_better else ("lo", "hi")
    assert (norm[best], norm[worst]) == (1.0, 0.0)
    assert res.winner.startswith(best)
    # constraints read the same metric with the same name
    con = parse_constraint(f"{c.name}>=15")
    assert con.field == c.metric
    # the explanation puts it on its side
    text = engine.explanation()
    side = text.split("higher for")[1] if c.higher_is_better else text.split("higher for")[0]
    assert c.title.lower() in side
    # across devices the worst device is the worse value in the table's direction
    if c.aggregate:
        per = {"d1": _cand("m", **_set(c, 10.0)), "d2": _cand("m", **_set(c, 20.0))}
        (fc,) = fleet._build({("m", "openai"): per}, ["d1", "d2"], fleet.parse_aggregation("worst"), "e2e_p95")
        assert fc.metrics()[c.metric] == (10.0 if c.higher_is_better else 20.0)
        (fc,) = fleet._build({("m", "openai"): per}, ["d1", "d2"], fleet.parse_aggregation("mean"), "e2e_p95")
        assert fc.metrics()[c.metric] == 15.0


def test_unknown_is_one_word(record):
    assert UNKNOWN == "unknown"
    assert all(c.fmt(None) == UNKNOWN and c.fmt(float("nan")) == UNKNOWN for c in CRITERIA)
    res = dict(record["result"])
    row = dict(res["candidates"][0])
    row["criteria"] = {k: None for k in row["criteria"]}
    res["candidates"] = [row] + res["candidates"][1:]
    rec = {**record, "result": res}
    md, html = export.markdown_text(rec), export.html_report(rec).split("<script")[0]   # not the vendor JS
    for text in (md, html):
        for other in ("n/a", "no data", "| - |", "–"):
            assert other not in text
    assert md.replace("\\", "").count(f"{UNKNOWN} (") >= len(CRITERIA)


NEW_RECORD = '''    Criterion("warmth", "warmth_c", "warmth_c", False, "C", "Warmth", help="laptop surface temperature"),
'''


def test_a_new_criterion_is_one_record(tmp_path):
    """A copy of core/ with one more record: weights, constraints, the matrix and every writer take it, and a
    candidate without the metric shows "unknown" (not 0) and cannot meet a constraint on it."""
    shutil.copytree(REPO_ROOT / "core", tmp_path / "core", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "data").mkdir()
    shutil.copy(REPO_ROOT / "data" / "licenses.json", tmp_path / "data" / "licenses.json")
    src = tmp_path / "core" / "decision" / "criteria.py"
    text = src.read_text()
    anchor = "\n)\nNAMES: tuple[str, ...]"
    assert text.count(anchor) == 1
    src.write_text(text.replace(anchor, "\n" + NEW_RECORD.rstrip("\n") + anchor))
    script = textwrap.dedent('''
        import json, sys
        import numpy as np
        from core.decision import engine, export, report, view
        from core.decision.matrix import Candidate, parse_constraint
        def cand(name, **extra):
            return Candidate(run_id="r", model=name, backend="openai", e2e_ms=np.full(5, 900.0),
                             tpot_ms=np.full(5, 20.0), peak_rss_mb=800.0, disk_mb=300.0, license="mit",
                             extra_metrics=extra)
        res = engine.decide([cand("frugal", warmth_c=2.0), cand("hungry", warmth_c=9.0), cand("unmeasured")],
                            "warmth=1", constraints=["warmth_c<=5"], n_boot=0, n_samples=50)
        rec = {"name": "e", "run_ids": ["r"], "result": res.to_dict(), "context": {"runs": {}}}
        rows = {r.model: r for r in res.candidates}
        print(json.dumps({
            "winner": res.winner, "weights": list(res.weights),
            "warmth": {m: r.criteria.get("warmth_c") for m, r in rows.items()},
            "failed": {m: r.failed_constraints for m, r in rows.items()},
            "cell": report.build(res).row(rows["unmeasured"].candidate).cell("warmth").value,
            "md": "Warmth (C)" in export.markdown_text(rec), "html": "<th>Warmth (C)</th>" in export.html_report(rec),
            "csv": "warmth_c" in export.csv_text(rec).splitlines()[0],
            "table": "Warmth (C)" in view.matrix_frame(res).columns,
            "present": "Warmth (C)" in list(view.deciding_numbers(res).index),
        }))
    ''')
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SLM_DB": str(tmp_path / "x.duckdb")}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["winner"].startswith("frugal") and got["weights"][-1] == "warmth"
    assert got["warmth"] == {"frugal": 2.0, "hungry": 9.0, "unmeasured": None}
    assert any("warmth_c 9 violates warmth_c<=5" in f for f in got["failed"]["hungry"])
    assert "warmth_c unknown" in got["failed"]["unmeasured"]
    assert got["cell"] == UNKNOWN
    assert got["md"] and got["html"] and got["csv"] and got["table"] and got["present"]
    assert criteria.NAMES[-1] != "warmth"       # the copy, not this tree, was changed
