"""Present's table is escaped (issue 18): st.table renders cells and headers as Markdown in Streamlit 1.67, so a
model id from an endpoint's /v1/models like ![x](https://host/p.png) must reach it as literal text."""
from __future__ import annotations

from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from core.decision import data, engine, record
from core.output import md_text
from tests.decision import fixture as fx
from tests.support.store import migrated

IMG = "![x](https://evil.example/p.png)"


def test_present_table_cells_and_headers_are_escaped(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "p.duckdb")))
    models = [{**fx.STANDARD[0], "model": IMG, "backend": "openai"},
              {**fx.STANDARD[1], "model": "<img src=https://evil.example/q.png>", "backend": "openai"}]
    fx.add_run("run-h", models, seed=1)
    result = engine.decide(data.load_candidates(["run-h"]), "latency=1", n_boot=20, n_samples=200)
    record.save(record.build_record("meeting", result, ["run-h"]))
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/present.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.table[0].value
    cells = [str(c) for c in table.columns] + [str(i) for i in table.index] + \
        [str(v) for row in table.itertuples(index=False) for v in row]
    assert any(md_text(IMG) in c for c in cells), cells        # the id is there, escaped
    md = MarkdownIt("commonmark")
    for cell in cells:                                           # and no cell renders as an image, link or HTML
        html = md.render(cell)
        assert "<img" not in html and "<a " not in html, (cell, html)
