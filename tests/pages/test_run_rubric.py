"""The run + rubric picker (ui/run_rubric.py), one function on both the Quality and the Score-by-hand page: the
run's label, the rubric made for the run's prompt set as the default (again when another run is picked), and a
warning when the chosen rubric was not made for it. Real DuckDB file, the pages under AppTest."""
import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from core.quality.rubrics import import_rubric
from core.store import connect
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated

MISMATCH = "was not made for this run's prompt set"


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "picker.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    import_rubric(dict(TEST_RUBRIC))                  # "notes"
    make_run("made-for-notes", {"p1": "task"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    make_run("other-set", {"p1": "task"}, {("m-a", "p1"): "alpha"}, extra_requests=False)
    with connect() as con:   # newest first: other-set; made-for-notes ran data/prompts/notes.json
        con.execute("UPDATE runs SET prompt_set = 'data/prompts/notes.json', "
                    "created_at = TIMESTAMP '2026-01-01 10:00:00' WHERE run_id = 'made-for-notes'")
        con.execute("UPDATE runs SET prompt_set = 'other', created_at = TIMESTAMP '2026-01-02 10:00:00' "
                    "WHERE run_id = 'other-set'")


@pytest.mark.parametrize("path,key", [("pages/quality.py", "quality_"), ("pages/scoring.py", "scoring_")])
def test_both_pages_pick_a_run_and_its_rubric_alike(two_runs, path, key):
    at = AppTest.from_file(str(REPO_ROOT / path), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    run, rubric = at.selectbox(key=key + "run"), at.selectbox(key=key + "rubric")
    assert run.value == "other-set"                                   # the newest run first
    assert run.format_func("made-for-notes").startswith("made-for-notes · 2026-01-01 10:00 · data/prompts/notes.json")
    assert run.format_func("made-for-notes").endswith(" · 6 outputs · completed")   # measured ok requests
    assert run.format_func("other-set").endswith(" · 1 outputs · completed")
    other = next(n for n in rubric.options if n != "notes")
    rubric.select(other).run()
    assert not any(MISMATCH in w.value for w in at.warning)           # no rubric was made for "other"
    at.selectbox(key=key + "run").select("made-for-notes").run()      # another run: its own rubric again
    assert at.selectbox(key=key + "rubric").value == "notes"
    assert not any(MISMATCH in w.value for w in at.warning)
    at.selectbox(key=key + "rubric").select(other).run()              # not the one made for it: said so
    (warning,) = [w.value for w in at.warning if MISMATCH in w.value]
    assert "The matching rubric is notes" in warning
    assert at.selectbox(key=key + "run").value == "made-for-notes"
