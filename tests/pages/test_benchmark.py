"""The Benchmark page under AppTest: empty database, and a full run against our local server."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated

MODEL = "pagemodel;ttft=0.002;tok=0.001;n=5"


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "page.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)


def open_page():
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    return at.switch_page("pages/benchmark.py").run()


def test_empty_database(db):
    at = open_page()
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["Benchmark"]
    assert any("No benchmark run yet" in i.value for i in at.info)


def test_run_from_the_page_and_read_results(db):
    from core.catalog import endpoints
    with OpenAITestServer(models=[MODEL]) as server:
        endpoints.add("testserver", server.base_url)
        at = open_page()
        assert not at.exception, [e.message for e in at.exception]
        label = next(o for o in at.multiselect(key="bench_models").options if o.startswith(MODEL))
        at.multiselect(key="bench_models").set_value([label])   # not the preselected smallest model
        at.radio(key="bench_prompt_source").set_value("Edit")
        at.run()
        at.text_area(key="bench_prompt_text").input('["first prompt", {"id": "b", "text": "second prompt"}]')
        at.number_input(key="bench_rounds").set_value(2)
        at.text_input(key="bench_concurrency").input("1,2")
        assert at.radio(key="bench_order").value == "interleaved"
        at.radio(key="bench_order").set_value("blocked")
        at.run()
        assert not at.error, [e.value for e in at.error]
        at.button(key="bench_start").click().run()
        job = at.session_state["bench_job"]
        deadline = time.monotonic() + 60
        while job.running and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not job.running and job.error is None and job.outcome.status == "completed"
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        tables = [d.value for d in at.dataframe]
        summary = next(t for t in tables if "TTFT p50 (ms)" in t.columns)
        assert list(summary["concurrency"]) == [1, 2] and list(summary["ok"]) == [4, 4]
        assert (summary["TTFT p50 (ms)"] > 0).all() and (summary["token source"] == "usage").all()
        requests = next(t for t in tables if "output_text" in t.columns)
        assert len(requests) == 8 and requests["output_text"].str.startswith("w0").all()
        from core.store import bench as store
        assert store.get_run(job.outcome.run_id)["environment"]["schedule"]["order"] == "blocked"
        assert any("Order: blocked" in m.value for m in at.markdown)
        # the Timeline tab draws the run's requests on its one clock (not the empty-state line)
        captions = [c.value for c in at.caption]
        assert any("on the run's one clock" in c for c in captions)
        assert not any("has times on the run's clock" in c for c in captions)


def test_cancel_from_the_page_keeps_finished_requests(db):
    from core.catalog import endpoints
    from core.store import bench as store
    slow = "pageslow;ttft=0.1;n=2"
    with OpenAITestServer(models=[slow]) as server:
        endpoints.add("testserver", server.base_url)
        at = open_page()
        label = next(o for o in at.multiselect(key="bench_models").options if o.startswith(slow))
        at.multiselect(key="bench_models").set_value([label])   # not the preselected smallest model
        at.radio(key="bench_prompt_source").set_value("Edit")
        at.run()
        at.text_area(key="bench_prompt_text").input('["only prompt"]')
        at.number_input(key="bench_rounds").set_value(50)
        at.number_input(key="bench_warmup").set_value(0)
        at.run()
        at.button(key="bench_start").click().run()
        job = at.session_state["bench_job"]
        deadline = time.monotonic() + 30
        while job.snapshot().done < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        at.run()
        assert any("running" in (p.proto.text or "") for p in at.get("progress"))   # live progress per model
        at.button(key="bench_cancel").click().run()
        job.join(30)
        assert not job.running and job.outcome.status == "interrupted"
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        run = store.get_run(job.run_id)
        assert run["status"] == "interrupted" and run["models"][0]["status"] == "interrupted"
        assert 2 <= len(store.run_requests(job.run_id)) < 50
        # the results follow the cancelled run, its level reads "interrupted", and Resume completes it
        assert at.selectbox(key="bench_result_run").value == job.run_id
        summary = next(d.value for d in at.dataframe if "TTFT p50 (ms)" in d.value.columns)
        assert list(summary["status"]) == ["interrupted"]
        at.button(key="bench_resume").click().run()
        resumed = at.session_state["bench_job"]
        assert resumed is not job and resumed.run_id == job.run_id
        resumed.join(60)
        assert resumed.outcome.status == "completed"
        assert store.get_run(job.run_id)["status"] == "completed" and len(store.run_requests(job.run_id)) == 50
