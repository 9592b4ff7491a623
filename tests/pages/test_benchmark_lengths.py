"""The Benchmark page's Lengths mode under AppTest: a sweep against our local server, then its curves, time to
notes and points on the page."""
import time

import pytest

from tests.pages.test_benchmark import open_page
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated

MODEL = "lenpage;ttft=0.002;pt=0.00002;tok=0.001;n=5;window=700"


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "page.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)


def test_lengths_mode_runs_a_sweep_and_shows_time_to_notes(db):
    from core.catalog import endpoints
    with OpenAITestServer(models=[MODEL]) as server:
        endpoints.add("lenserver", server.base_url)
        at = open_page()
        label = next(o for o in at.multiselect(key="bench_models").options if o.startswith(MODEL))
        at.multiselect(key="bench_models").set_value([label])   # not the preselected smallest model
        at.radio(key="bench_mode").set_value("Lengths")
        at.run()
        at.text_input(key="bench_len_lengths").input("150,300,450,900")
        for key, value in (("bench_rounds", 1), ("bench_warmup", 0), ("bench_max_tokens", 5)):
            at.number_input(key=key).set_value(value)
        at.run()
        assert not at.error, [e.value for e in at.error]
        at.button(key="bench_start").click().run()
        assert not at.exception, [e.message for e in at.exception]
        job = at.session_state["bench_job"]
        deadline = time.monotonic() + 60
        while job.running and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not job.running and job.error is None and job.outcome.status == "completed"
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    captions = " ".join(c.value for c in at.caption)
    # 6,000 tokens is far beyond the longest prompt that fits the 700-token window: withheld, saying why
    assert "time to notes withheld: measure at 6,000 tokens: the longest measured prompt is " in captions
    assert "context window 700 tokens \\(endpoint\\)" in captions   # escaped Markdown
    points = next(d.value for d in at.dataframe if "prefill_tokens_per_s" in d.value.columns)
    assert list(points["length"]) == [150, 300, 450, 900]
    assert points["error"].iloc[-1].startswith("does not fit (")
    # the table shows a missing figure as "unknown" (the column is then text), never "None"
    assert all(float(v.replace(",", "")) > 0 for v in points["prefill_tokens_per_s"].iloc[:3])
    assert points["prefill_tokens_per_s"].iloc[-1] == "unknown"
    specs = " ".join(e.proto.spec for e in at.get("vega_lite_chart"))
    for title in ("TTFT (ms) against prompt length", "TPOT (ms per token) against prompt length"):
        assert title in specs
    assert "Memory unknown" in captions    # a server the app does not know the process of: never 0
