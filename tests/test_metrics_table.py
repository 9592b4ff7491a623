"""The table of metrics (core.metrics.table): one record per number, its name, unit, label and definition beside
its formula; the level result is compiled from it, the writers walk it, docs/metrics.md is written from it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from core import metrics
from core.config import REPO_ROOT
from core.metrics.docs import metrics_markdown
from tests.test_metrics import rec


def test_docs_metrics_md_is_the_table():
    """docs/metrics.md is what `python -m core.metrics.docs` writes: regenerate it when a record changes."""
    assert (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8") == metrics_markdown()


def test_every_metric_has_one_name_a_unit_in_its_label_and_a_definition():
    names = [m.name for m in metrics.METRICS]
    assert len(names) == len(set(names))
    for m in metrics.METRICS:
        assert m.definition, f"{m.name} has no definition"
        assert m.scope in ("level", "request", "sweep")
        assert (m.formula is not None) == (m.scope == "level"), m.name
        if m.unit and m.shown:
            assert m.unit in m.label, (m.name, m.label)       # a heading says its unit
    assert metrics.RESULT_KEYS[:len(metrics.IDENTITY)] == metrics.IDENTITY


def test_a_level_is_compiled_once_into_a_frozen_typed_record():
    rows = [metrics.request_row(rec(usage=5), level_start=9.5),
            metrics.request_row(rec(start=10.0, chunks=(10.2, 10.3), end=10.4, usage=3), level_start=9.5)]
    result = metrics.compile_level(rows, model="m", backend="openai", concurrency=2,
                                   load={"rss_before_mb": 100.0, "rss_after_load_mb": 350.0, "peak_rss_mb": 400.0})
    assert result.requests_ok == 2 and result.concurrency == 2 and result.status == "ok"
    assert result.ttft_ms["p50"] == pytest.approx(150)              # 100 and 200 ms
    assert result.itl_ms["mean"] == pytest.approx((62.5 + 100) / 2)  # (350-100)/4 and (400-200)/2
    assert result.decode_tokens_per_s["mean"] == pytest.approx((16 + 10) / 2)   # 1/TPOT per request, then mean
    assert result.weights_mb == 250 and result.working_mb == 50
    assert result.throughput_tok_s == pytest.approx(8 / (0.9 - 0.5))
    with pytest.raises(AttributeError):
        result.ttft_ms = None                                       # frozen: a writer reads, never edits
    assert tuple(result.to_dict()) == metrics.RESULT_KEYS
    assert metrics.level_result(rows, model="m", backend="openai", concurrency=2) == \
        metrics.compile_level(rows, model="m", backend="openai", concurrency=2).to_dict()


NEW_RECORD = '''
    Metric("chunks_per_token", "chunks/token", "chunks per token (chunks/token)",
           "Chunks per token: SSE chunks / completion tokens, per request (1 when every chunk carries one token).",
           lambda lv: summary(r["chunk_count"] / r["completion_tokens"] for r in lv.ok if r["completion_tokens"]),
           stats=("p50",), digits=2),
'''


def test_a_new_metric_is_one_record(tmp_path):
    """A copy of core/ with one more record beside its formula: the level table, the JSON, the CSV, the report
    and docs/metrics.md all carry it, and no writer was touched."""
    shutil.copytree(REPO_ROOT / "core", tmp_path / "core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "tests" / "test_metrics.py", tmp_path / "test_metrics.py")
    src = tmp_path / "core" / "metrics" / "table.py"
    text = src.read_text()
    anchor = "\n    # the conditions of the level"
    assert text.count(anchor) == 1
    src.write_text(text.replace(anchor, "\n" + NEW_RECORD.strip("\n") + anchor))
    script = textwrap.dedent('''
        import io, csv, json
        from core import metrics
        from core.bench import charts, report
        from core.metrics.docs import metrics_markdown
        from test_metrics import rec
        rows = [metrics.request_row(rec(usage=6), level_start=9.5),           # 3 chunks, 6 tokens: 0.5
                metrics.request_row(rec(usage=3), level_start=9.5)]           # 3 chunks, 3 tokens: 1.0
        result = metrics.level_result(rows, model="m", backend="openai", concurrency=1)
        rep = report.BenchReport(run={"run_id": "r1", "status": "completed"}, results=[result])
        csv_rows = list(csv.DictReader(io.StringIO(report.to_csv(rep))))
        md = report.to_markdown(rep)
        cut = lambda ln: [c.strip() for c in ln.strip().strip("|").split("|")]
        head = cut(next(ln for ln in md.splitlines() if ln.startswith("| model |")))
        cells = cut(next(ln for ln in md.splitlines() if ln.startswith("| m |")))
        table = charts.summary_table([result])
        print(json.dumps({
            "json": json.loads(json.dumps(result))["chunks_per_token"],
            "csv": csv_rows[0]["chunks_per_token_p50"],
            "report": cells[head.index("chunks per token p50 (chunks/token)")],
            "table": float(table["chunks per token p50 (chunks/token)"][0]),
            "definition": "Chunks per token: SSE chunks / completion tokens" in md,
            "docs": "| `chunks_per_token` | chunks/token |" in metrics_markdown(),
        }))
    ''')
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SLM_DB": str(tmp_path / "x.duckdb")}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["json"]["p50"] == pytest.approx(0.75) and got["json"]["mean"] == pytest.approx(0.75)
    assert float(got["csv"]) == pytest.approx(0.75)
    assert got["report"] == "0.75" and got["table"] == pytest.approx(0.75)
    assert got["definition"] and got["docs"]
    assert "chunks_per_token" not in metrics.RESULT_KEYS          # the copy, not this tree, was changed
