"""benchmark_report.md escapes every stored value (issue 18): a run whose id, status, settings, backend, token
source, pid source and notes hold Markdown/HTML comes out as literal text (a real DuckDB store)."""
from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from core.bench.report import build_report, to_markdown
from core.output import md_text
from core.store import connect
from tests.support.store import migrated

EVIL = "<img src=https://evil.example/p.png>"
IMG = "![x](https://evil.example/p.png)"


@pytest.fixture
def hostile_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "r.duckdb")))
    rid = "run" + EVIL
    with connect() as con:
        con.execute("INSERT INTO runs (run_id, status, prompt_set, prompt_set_hash, settings, environment, note) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [rid, "completed" + EVIL, "p" + IMG, "`" + EVIL,
                     json.dumps({"rounds": EVIL, "warmup": IMG, "max_tokens": "[l](javascript:x)", "temperature": 0,
                                 "seed": "<b>", "concurrency": [IMG], "timeout_s": EVIL}),
                     json.dumps({"cpu": EVIL, "packages": {IMG: EVIL}}), "note " + IMG])
        con.execute("INSERT INTO run_models (run_id, model, backend, concurrency, status, token_count_source, "
                    "pid_source, error, notes) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
                    [rid, "m" + IMG, "openai" + EVIL, "ok" + EVIL, "usage" + IMG, "port" + EVIL, "boom " + EVIL,
                     json.dumps(["a note " + EVIL])])
        for i, ok in enumerate((True, False)):
            con.execute("INSERT INTO requests (request_id, run_id, model, backend, concurrency, prompt_id, round, "
                        "warmup, ok, e2e_ms, engine_wait_ms, engine_wait_source, token_count_source, error) "
                        "VALUES (?, ?, ?, ?, 1, 'p1', ?, false, ?, 10.0, 1.0, ?, ?, ?)",
                        [f"q{i}", rid, "m" + IMG, "openai" + EVIL, i, ok, "inferred" + IMG, "usage" + IMG,
                         None if ok else "HTTP 500 " + EVIL])
    return rid


def test_every_stored_value_is_escaped(hostile_run):
    md = to_markdown(build_report(hostile_run))
    html = MarkdownIt("commonmark").enable("table").render(md)     # what a viewer makes of the file
    assert "<img" not in html and "<b>" not in html and "<a " not in html, html
    assert html.count("<table>") == 1 and html.count("<tr>") == 2    # no extra cell or row came of a value
    assert md_text(hostile_run) in md.splitlines()[0]
    for raw in ("completed" + EVIL, "openai" + EVIL, "port" + EVIL, "a note " + EVIL):
        assert md_text(raw) in md, raw
