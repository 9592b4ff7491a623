"""How a judge run ends and reads: cancelled -> 'interrupted' in the store and in the message, a run whose
process is gone -> 'interrupted', never green unless every judgement parsed (real HTTP judge, real DuckDB)."""
import json
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from core.config import REPO_ROOT
from core.quality import views
from core.quality.judge import JudgeModel, run_judge
from core.quality.rubrics import import_rubric
from core.store import connect
from core.store import quality as qstore
from tests.support.judge_server import JudgeServer
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated

GOOD = json.dumps({"rationale": "ok", "scores": {"coverage": 3, "faithfulness": 4}})


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "s.duckdb")))
    import_rubric(dict(TEST_RUBRIC))
    make_run("rs", {"p1": "task one"}, {("m-a", "p1"): "alpha", ("m-b", "p1"): "beta"})
    return tmp_path


def _judge(srv):
    return JudgeModel("judge-model", "openai", srv.base_url, None, max_tokens=200, timeout=10)


def _cancel_during_first_call(answer):
    """A judge server that sets the cancel event while it answers the first call."""
    cancel = threading.Event()

    def reply(body):
        cancel.set()
        return answer
    return cancel, reply


def test_cancelled_run_with_nothing_parsed_is_interrupted_in_store_and_an_error_with_its_cause(db):
    cancel, reply = _cancel_during_first_call("not json at all")
    with JudgeServer(reply) as srv:
        doc = run_judge("rs", "notes", _judge(srv), cancel=cancel, retries=0)
    assert (doc["status"], doc["judged"], doc["failed"], doc["total"]) == ("interrupted", 1, 1, 2)
    [jr] = qstore.judge_runs("rs")
    assert jr["status"] == "interrupted" and jr["note"] == "cancelled after 1 of 2 judge calls"
    level, text = views.judge_result_message(doc)
    assert level == "error"
    assert "interrupted" in text and "0 of 1 judgements parsed, 1 failed" in text
    assert "Cause: unparseable answer" in text and "\n" not in text
    h = views.judge_run_health(jr)
    assert h["state"] == "failed" and h["interrupted"]
    assert views.judge_run_notice(h)[0] == "error"
    assert views.judge_run_label(jr, h).endswith("0 of 1 parsed · failed, interrupted")


def test_cancelled_run_with_all_parsed_is_a_warning_that_reads_interrupted(db):
    cancel, reply = _cancel_during_first_call(GOOD)
    with JudgeServer(reply) as srv:
        doc = run_judge("rs", "notes", _judge(srv), cancel=cancel)
    level, text = views.judge_result_message(doc)
    assert level == "warning" and "interrupted" in text and "1 of 1 judgements parsed" in text
    [jr] = qstore.judge_runs("rs")
    h = views.judge_run_health(jr)
    assert h["state"] == "interrupted"
    level, text = views.judge_run_notice(h)
    assert level == "warning" and "interrupted" in text and "cancelled after 1 of 2" in text
    assert views.judge_run_label(jr, h).endswith("1 of 1 parsed · interrupted")


def test_cancel_after_the_last_call_still_completes(db):
    cancel = threading.Event()
    calls = []

    def reply(body):
        calls.append(1)
        if len(calls) == 2:
            cancel.set()
        return GOOD
    with JudgeServer(reply) as srv:
        doc = run_judge("rs", "notes", _judge(srv), cancel=cancel)
    assert doc["status"] == "completed"
    assert [r["status"] for r in qstore.judge_runs("rs")] == ["completed"]
    assert views.judge_result_message(doc) == ("success", f"Judge run {doc['judge_run_id']} done: "
                                                          "2 of 2 judgements parsed, 0 failed.")


def test_only_a_fully_parsed_completed_run_is_green():
    base = {"judge_run_id": "j", "scores": [], "status": "completed", "note": None}
    failed = [{"request_id": "x", "status": "failed", "rationale": "judge call failed: HTTP 500\nboom"}]
    cases = {
        ("completed", 2, 0): "success",
        ("completed", 2, 1): "warning",
        ("completed", 1, 1): "error",
        ("completed", 0, 0): "error",
        ("interrupted", 1, 0): "warning",
        ("interrupted", 0, 0): "warning",
        ("interrupted", 1, 1): "error",
    }
    for (status, judged, nfail), want in cases.items():
        doc = {**base, "status": status, "judged": judged, "failed": nfail, "total": 2,
               "scores": failed if nfail else []}
        level, text = views.judge_result_message(doc)
        assert level == want, (status, judged, nfail, text)
        assert ("interrupted" in text) == (status == "interrupted"), text
        if nfail:
            assert "Cause: judge call failed: HTTP 500 boom" in text
    pair = {**base, "mode": "pairwise", "judged": 2, "failed": 1, "total": 2,
            "pairwise": [{"error": "ba: judge call failed: refused"}]}
    assert views.judge_result_message(pair) == (
        "warning", "Judge run j partly failed: 1 of 2 judgements parsed, 1 failed. Cause: ba: judge call failed: refused")


def test_a_judge_run_whose_process_died_reads_interrupted(db):
    code = ("from core.store import quality as q\n"
            "print(q.create_judge_run(run_id='rs', rubric='notes', judge_model='j', judge_backend='openai', "
            "judge_endpoint=None, mode='pointwise', template_version='pointwise-v1', settings={}, warnings=[]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=dict(os.environ), capture_output=True,
                         text=True, timeout=120, check=True)
    dead = out.stdout.strip().splitlines()[-1]
    alive = qstore.create_judge_run(run_id="rs", rubric="notes", judge_model="j", judge_backend="openai",
                                    judge_endpoint=None, mode="pointwise", template_version="pointwise-v1",
                                    settings={}, warnings=[])
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with connect() as con:   # runners on another host: told apart only by age
        for jid, age_h in (("far-recent", 1), ("far-old", 30)):
            con.execute("INSERT INTO judge_runs (judge_run_id, run_id, rubric, judge_model, judge_backend, mode, "
                        "template_version, status, created_at, runner_pid, runner_host, runner_started) "
                        "VALUES (?, 'rs', 'notes', 'j', 'openai', 'pointwise', 'pointwise-v1', 'running', ?, 1, ?, 0)",
                        [jid, now - timedelta(hours=age_h), socket.gethostname() + "-elsewhere"])
    status = {r["judge_run_id"]: (r["status"], r["note"]) for r in qstore.judge_runs("rs")}
    assert status[dead] == ("interrupted", qstore.JUDGE_STALE_NOTE)
    assert status[alive] == ("running", None)
    assert status["far-recent"][0] == "running" and status["far-old"][0] == "interrupted"
    h = views.judge_run_health(next(r for r in qstore.judge_runs("rs") if r["judge_run_id"] == dead))
    assert h["state"] == "empty" and views.judge_run_notice(h)[0] == "warning"
    # this process's own run, once its runner stops without recording the end, reads interrupted too
    qstore._ACTIVE_JUDGE_RUNS.discard(alive)
    assert {r["judge_run_id"]: r["status"] for r in qstore.judge_runs("rs")}[alive] == "interrupted"


def test_default_judge_run_is_the_latest_with_parsed_judgements(db):
    with JudgeServer([GOOD]) as srv:
        older = run_judge("rs", "notes", _judge(srv))["judge_run_id"]
    with JudgeServer([GOOD]) as srv:
        latest_ok = run_judge("rs", "notes", _judge(srv))["judge_run_id"]
    with JudgeServer([{"status": 500, "body": "down"}]) as srv:
        failed = run_judge("rs", "notes", _judge(srv))["judge_run_id"]
    runs = qstore.judge_runs("rs", mode="pointwise")
    assert [r["judge_run_id"] for r in runs] == [failed, latest_ok, older]
    assert runs[views.default_judge_run(runs)]["judge_run_id"] == latest_ok
