"""The Decision and Present pages under streamlit.testing: empty database, a fixture run, a saved decision."""
import pytest
from streamlit.testing.v1 import AppTest

from tests.decision import fixture as fx
from core.config import REPO_ROOT
from core.decision import data, engine, record
from core.output import md_text   # st.table renders Markdown: Present escapes every cell and label
from tests.support.store import migrated

APP = str(REPO_ROOT / "app.py")


@pytest.fixture()
def empty_db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "empty.duckdb")))
    return tmp_path


@pytest.fixture()
def run_db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "runs.duckdb")))
    fx.add_run("run-a", fx.STANDARD, seed=1)
    return tmp_path


def _page(path):
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(path)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_decision_page_empty_database(empty_db):
    at = _page("pages/decision.py")
    assert at.title[0].value == "Decision"
    assert any("No benchmark run yet" in i.value for i in at.info)


def test_present_page_empty_database(empty_db):
    at = _page("pages/present.py")
    assert any("No saved decision yet" in i.value for i in at.info)


def test_decision_page_with_a_run(run_db):
    at = _page("pages/decision.py")
    assert at.multiselect(key="decision_runs").value == ["run-a"]
    # sliders are percentages of 100; a preset sets them all
    assert sum(s.value for s in at.slider) == 100
    at.selectbox(key="decision_preset").set_value("latency first").run()
    assert not at.exception
    assert at.slider(key="decision_w_latency").value == 50
    # the matrix is shown with failing rows kept, and the explanation sentence
    frames = [d.value for d in at.dataframe]
    matrix = next(f for f in frames if "candidate" in f.columns)
    assert len(matrix) == 4 and "broken · llama.cpp" in set(matrix["candidate"])
    assert "broken | llamacpp | run-a" in set(matrix["details (id)"])  # ids in the details column
    broken = matrix[matrix["candidate"] == "broken · llama.cpp"].iloc[0]
    assert broken["rank"] == "not ranked" and "benchmark failed" in broken["why not ranked"]
    assert any("rescaled between the worst and the best" in c.value for c in at.caption)
    # a constraint greys a candidate out with its reason
    at.number_input(key="decision_max_mem").set_value(2000).run()
    matrix = next(d.value for d in at.dataframe if "candidate" in d.value.columns)
    big = matrix[matrix["candidate"] == "slow-big · Foundry Local"].iloc[0]
    assert not big["passes"] and "peak_rss_mb 3500 violates" in big["why not ranked"]
    # no export before the decision is saved: exports come from the saved record
    assert not [b for b in at.get("download_button")]
    assert any("Save the decision to export it" in i.value for i in at.info)
    # save it, then the Present page shows it
    at.text_input(key="decision_name").set_value("pilot choice")
    at.text_area(key="decision_notes").set_value("We go with the small one.")
    submit = next(b for b in at.button if b.label == "Save decision")
    submit.click().run()
    assert not at.exception
    assert any("Saved 'pilot choice'" in s.value for s in at.success)
    assert record.load("pilot choice")["notes"] == "We go with the small one."
    assert len(at.get("download_button")) == 4  # now the saved record can be exported


def test_present_page_shows_saved_decision(run_db):
    cands = data.load_candidates(["run-a"])
    result = engine.decide(cands, "latency=1", n_boot=20, n_samples=500)
    record.save(record.build_record("board meeting", result, ["run-a"], notes="Notes *not* markdown"))
    at = _page("pages/present.py")
    assert at.title[0].value == "board meeting"
    assert any(h.value.startswith("Recommendation: ") and "·" in h.value for h in at.header)  # a display name
    assert any(t.value.startswith(("Clear winner", "Likely", "Too close to call")) for t in at.text)
    numbers = at.table[0].value
    assert list(numbers.index)[:6] == [md_text(x) for x in ("Latency, E2E p95 (ms)", "Decode speed (tok/s per request)",
                                                            "Peak memory (MB)", "Quality (0..1)", "Disk (MB)",
                                                            "License")]
    assert numbers.columns[0].startswith("Recommended: ") and numbers.columns[1].startswith("Runner-up: ")
    assert any(t.value == "Notes *not* markdown" for t in at.text)
    assert not at.main.slider and not at.main.number_input and not at.main.button  # no controls on the page (the sidebar has its own)


def test_present_unknown_decision_is_an_error(run_db):
    cands = data.load_candidates(["run-a"])
    record.save(record.build_record("real one", engine.decide(cands, "latency=1", n_boot=20, n_samples=500),
                                    ["run-a"]))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["decision"] = "no such"
    at.run()
    at.switch_page("pages/present.py")
    at.query_params["decision"] = "no such"
    at.run()
    assert any("no saved decision named 'no such'" in e.value for e in at.error)
    assert not any(h.value.startswith("Recommendation") for h in at.header)  # not another decision
