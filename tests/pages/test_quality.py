"""The Quality and Score-by-hand pages under AppTest: empty database, then a scored run end to end."""
import json

import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from core.quality.blind import blind_session
from core.quality.rubrics import import_rubric
from core.store import quality as qstore
from tests.support.judge_server import JudgeServer
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "p.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    return tmp_path


def _page(path):
    at = AppTest.from_file(str(REPO_ROOT / path), default_timeout=120)
    return at.run()


@pytest.mark.parametrize("path", ["pages/quality.py", "pages/scoring.py"])
def test_pages_on_empty_database(db, path):
    at = _page(path)
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("No benchmark run yet" in i.value for i in at.info)


def test_scoring_page_blind_form_progress_and_reveal(db):
    import_rubric(dict(TEST_RUBRIC))
    make_run("rp", {"p1": "task one", "p2": "task two"},
             {("m-a", "p1"): "alpha one", ("m-b", "p1"): "beta one", ("m-a", "p2"): "alpha two",
              ("m-b", "p2"): "beta two"})
    at = _page("pages/scoring.py")
    at.selectbox(key="scoring_rubric").select("notes").run()
    at.text_input(key="scoring_rater").input("ana").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "0 of 2 prompts scored" in str(at.get("progress")[0].proto)
    shown = [c.value for c in at.code]
    assert "task one" in shown
    assert not any(t.value in ("m-a", "m-b") for t in at.text)  # blind: no model names
    assert not any("m-a" in m.value or "m-b" in m.value for m in at.markdown)
    # fill the form for prompt 1 and submit
    for ni in at.number_input:
        ni.set_value(4)
    at.text_input[1].input("fine")
    submit = [b for b in at.button if b.label == "Save and next"][0]
    submit.click().run()
    assert not at.exception, [e.message for e in at.exception]
    s = blind_session("rp", "notes", "ana")
    assert s.done_count == 1
    assert "1 of 2 prompts scored" in str(at.get("progress")[0].proto)
    assert "task two" in [c.value for c in at.code]  # moved on to the next unscored prompt
    for ni in at.number_input:
        ni.set_value(2)
    [b for b in at.button if b.label == "Save and next"][0].click().run()
    assert blind_session("rp", "notes", "ana").complete
    at.toggle(key="scoring_reveal").set_value(True).run()
    assert not at.exception
    df = next(d.value for d in at.dataframe if "model" in d.value.columns)
    assert set(df["model"]) == {"m-a", "m-b"} and set(df["candidate"]) == {"A", "B"}


def test_scoring_page_refuses_incomplete_form(db):
    import_rubric(dict(TEST_RUBRIC))
    make_run("rq", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    at = _page("pages/scoring.py")
    at.selectbox(key="scoring_rubric").select("notes").run()
    at.text_input(key="scoring_rater").input("bo").run()
    at.number_input[0].set_value(3)
    [b for b in at.button if b.label == "Save and next"][0].click().run()
    assert any("score every criterion" in e.value for e in at.error)
    assert qstore.human_scores("rq") == []


def test_quality_page_runs_judge_and_shows_agreement(db):
    import_rubric(dict(TEST_RUBRIC))
    make_run("rj", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    answer = json.dumps({"rationale": "fine <b>bold</b>", "scores": {"coverage": 3, "faithfulness": 4}})
    with JudgeServer([answer]) as srv:
        at = _page("pages/quality.py")
        at.selectbox(key="quality_rubric").select("notes").run()
        at.radio(key="quality_judge_where").set_value("An endpoint URL").run()
        at.text_input(key="quality_judge_url").input(srv.base_url).run()
        at.text_input(key="quality_judge_model_name").input("judge-model").run()
        at.button(key="quality_run_judge").click().run()
        if "quality_job" in at.session_state:    # the judge runs in a background thread (a fast one may
            at.session_state["quality_job"].join(60)  # already be done, and dropped by the progress fragment)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        assert not at.error, [e.value for e in at.error]
        assert any("2 of 2 judgements parsed" in s.value for s in at.success)
    runs = qstore.judge_runs("rj")
    assert len(runs) == 1 and runs[0]["status"] == "completed"
    frames = [d.value for d in at.dataframe]
    assert any("rationale" in f.columns and "fine <b>bold</b>" in set(f["rationale"]) for f in frames)
    assert any("kappa_weighted" in f.columns for f in frames)
    q = next(f for f in frames if "quality" in f.columns)
    assert q["quality"].tolist() == pytest.approx([(2 * 0.5 + 0.75) / 3] * 2)


def test_quality_page_shows_pairwise_checks_and_agreement(db):
    from core.quality.blind import save_prompt_scores
    from core.quality.judge import JudgeModel, run_judge

    import_rubric(dict(TEST_RUBRIC))
    make_run("rk", {"p1": "task one"}, {("m-a", "p1"): "alpha in May", ("m-b", "p1"): "beta"})
    point = json.dumps({"rationale": "r", "scores": {"coverage": 3, "faithfulness": 4}})
    pair = json.dumps({"rationale": "first", "winner": "1"})
    with JudgeServer([point]) as srv:
        run_judge("rk", "notes", JudgeModel("j", "openai", srv.base_url, timeout=10))
    with JudgeServer([pair]) as srv:
        run_judge("rk", "notes", JudgeModel("j", "openai", srv.base_url, timeout=10), pairwise=True)
    s = blind_session("rk", "notes", "ana")
    save_prompt_scores("rk", "notes", "ana", {c.request_id: ({"coverage": 3, "faithfulness": 5}, "")
                                              for c in s.prompts[0].candidates})
    at = _page("pages/quality.py")
    at.selectbox(key="quality_rubric").select("notes").run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any("1 inconsistent" in c.value for c in at.caption)
    frames = [d.value for d in at.dataframe]
    ag = next(f for f in frames if "kappa_weighted" in f.columns)
    assert ag.set_index("criterion").loc["coverage", "n"] == 2
    assert any("pass_rate" in f.columns for f in frames)  # checks ran with the judge
    q = next(f for f in frames if "quality" in f.columns)
    assert set(q["source"]) == {"people"}


def _judge_by_url(at, srv):
    at.radio(key="quality_judge_where").set_value("An endpoint URL").run()
    at.text_input(key="quality_judge_url").input(srv.base_url).run()
    at.text_input(key="quality_judge_model_name").input("judge-model").run()


def test_cancelled_judge_run_with_nothing_parsed_is_never_green(db):
    import threading

    import_rubric(dict(TEST_RUBRIC))
    make_run("rx", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    gate = threading.Event()

    def reply(body):   # held until the test has pressed Cancel, then unparseable
        gate.wait(30)
        return "not json"
    with JudgeServer(reply) as srv:
        at = _page("pages/quality.py")
        at.selectbox(key="quality_rubric").select("notes").run()
        _judge_by_url(at, srv)
        at.button(key="quality_run_judge").click().run()
        at.button(key="quality_cancel_judge").click().run()
        job = at.session_state["quality_job"]
        gate.set()
        job.join(60)
        at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.success, [s.value for s in at.success]
    msgs = [e.value for e in at.error]
    assert any("interrupted" in m and "0 of 1 judgements parsed, 1 failed" in m and "Cause:" in m for m in msgs), msgs
    [jr] = qstore.judge_runs("rx")
    assert jr["status"] == "interrupted"
    picker = at.selectbox(key="quality_jrun")
    assert picker.format_func(picker.value).endswith("· failed, interrupted")


def test_judge_run_whose_process_died_is_not_shown_running(db):
    import os
    import subprocess
    import sys

    from core.config import REPO_ROOT as root

    import_rubric(dict(TEST_RUBRIC))
    make_run("ry", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    code = ("from core.store import quality as q\n"
            "q.create_judge_run(run_id='ry', rubric='notes', judge_model='j', judge_backend='openai', "
            "judge_endpoint=None, mode='pointwise', template_version='pointwise-v1', settings={}, warnings=[])\n")
    subprocess.run([sys.executable, "-c", code], cwd=root, env=dict(os.environ), timeout=120, check=True)
    at = _page("pages/quality.py")
    at.selectbox(key="quality_rubric").select("notes").run()
    assert not at.exception, [e.message for e in at.exception]
    picker = at.selectbox(key="quality_jrun")
    label = picker.format_func(picker.value)
    assert label.endswith("0 of 0 parsed · empty, interrupted"), label   # not "· running"
    assert any("interrupted before any judgement" in w.value and "process running it ended" in w.value
               for w in at.warning), [w.value for w in at.warning]
    assert not at.success


def test_rubric_follows_the_chosen_runs_prompt_set(db):
    from core.store import connect

    import_rubric(dict(TEST_RUBRIC))
    import_rubric({**TEST_RUBRIC, "name": "workshop", "prompts": {}})
    make_run("r-notes", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    make_run("r-work", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    with connect() as con:
        con.execute("UPDATE runs SET prompt_set = 'data/prompts/notes.json' WHERE run_id = 'r-notes'")
        con.execute("UPDATE runs SET prompt_set = 'workshop' WHERE run_id = 'r-work'")
    at = _page("pages/quality.py")
    for run_id, rubric in (("r-notes", "notes"), ("r-work", "workshop"), ("r-notes", "notes")):
        at.selectbox(key="quality_run").select(run_id).run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.selectbox(key="quality_rubric").value == rubric, run_id
        assert not any("was not made for" in w.value for w in at.warning)
    at.selectbox(key="quality_rubric").select("workshop").run()   # another rubric on purpose: kept, warned
    assert at.selectbox(key="quality_rubric").value == "workshop"
    assert any("was not made for this run's prompt set" in w.value for w in at.warning)


def test_judge_run_picker_defaults_to_the_latest_run_with_parsed_judgements(db):
    from core.quality.judge import JudgeModel, run_judge

    import_rubric(dict(TEST_RUBRIC))
    make_run("rz", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    good = json.dumps({"rationale": "ok", "scores": {"coverage": 3, "faithfulness": 4}})

    def judge(answers):
        with JudgeServer(answers) as srv:
            return run_judge("rz", "notes", JudgeModel("j", "openai", srv.base_url, timeout=10))["judge_run_id"]
    first = judge([good])
    at = _page("pages/quality.py")
    at.selectbox(key="quality_rubric").select("notes").run()
    assert at.selectbox(key="quality_jrun").value == first
    second = judge([good])                                   # a newer run with parsed judgements: shown
    at.run()
    assert at.selectbox(key="quality_jrun").value == second
    judge([{"status": 500, "body": "down"}])                 # a newer failed run: not the default
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.selectbox(key="quality_jrun").value == second
    assert not at.error, [e.value for e in at.error]
    at.selectbox(key="quality_jrun").select(first).run()     # a run picked by hand stays picked
    assert at.selectbox(key="quality_jrun").value == first
