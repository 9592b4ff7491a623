"""A store whose judge agrees with people at kappa 0.67: real human scores and real judge scores (a judge run
against a local HTTP judge), on two devices, for the trust-gate tests of the decision (CLI and pages).

Run "rc" on device "dev-a": models m-a and m-b answered prompts p0..p3. The judge scored every output;
two people (ana, ben) scored m-a's only, so m-a's quality is people's and m-b's rests on the judge alone.
Judge vs people on the 4 co-scored outputs: weighted kappa 2/3 (tests/quality/test_calibration.py works it
out by hand). Run "rb" on device "dev-b" measured the same two models and was never scored.
"""
from __future__ import annotations

import json

from core.quality.judge import JudgeModel, run_judge
from core.quality.rubrics import import_rubric
from core.store import connect
from core.store import quality as qstore
from tests.support.judge_server import JudgeServer
from tests.support.quality_run import make_run

RUBRIC = {"name": "one", "description": "one criterion",
          "criteria": [{"name": "good", "description": "is it good", "scale": [1, 3], "weight": 1}]}
JUDGE = [1, 2, 3, 2]
ANA = [1, 2, 3, 3]
BEN = [1, 2, 2, 3]
KAPPA = 2 / 3
CO_SCORED = 4


def _models(run_id: str, device: str, e2e: float) -> None:
    with connect() as con:
        con.execute("UPDATE runs SET device = ? WHERE run_id = ?", [device, run_id])
        con.execute("UPDATE requests SET e2e_ms = ?, ttft_ms = ?, tpot_ms = 20.0, completion_tokens = 40, "
                    "chunk_gaps_ms = []::DOUBLE[] WHERE run_id = ?",
                    [e2e, e2e / 10, run_id])
        for model, mem in (("m-a", 900.0), ("m-b", 700.0)):
            con.execute("INSERT INTO run_models (run_id, model, backend, concurrency, status, license, disk_mb, "
                        "peak_rss_mb) VALUES (?, ?, 'openai', 1, 'ok', 'mit', 300.0, ?)", [run_id, model, mem])


def build_file(path) -> None:
    """Build it into the DuckDB file ``path`` (SLM_DB is set only while building)."""
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLM_DB", str(path))
        build()


def build() -> None:
    """Into the store SLM_DB names."""
    import_rubric(dict(RUBRIC))
    outputs = {(m, f"p{i}"): f"output {i}" for m in ("m-a", "m-b") for i in range(4)}
    ids = make_run("rc", {f"p{i}": f"task {i}" for i in range(4)}, outputs, extra_requests=False)
    _models("rc", "dev-a", 800.0)
    make_run("rb", {f"p{i}": f"task {i}" for i in range(4)}, outputs, extra_requests=False)
    _models("rb", "dev-b", 1200.0)

    judge_and_people("rc", ids)


def judge_and_people(run_id: str, ids: dict) -> str:
    """The judge (a local HTTP judge answering JUDGE) on every output of ``run_id``, and ana's and ben's scores
    on m-a's outputs (``ids``: (model, prompt id) -> request id, from make_run); the judge run's id."""
    def script(body):
        i = int(body["messages"][1]["content"].split("<<<CANDIDATE_OUTPUT ")[1].split(">>>\n", 1)[1].split("\n")[0][-1])
        return json.dumps({"rationale": "r", "scores": {"good": JUDGE[i]}})

    with JudgeServer(script) as srv:
        doc = run_judge(run_id, "one", JudgeModel("big-judge", "openai", srv.base_url, timeout=10))
    assert doc["failed"] == 0
    qstore.save_human_scores(
        [{"run_id": run_id, "request_id": ids[("m-a", f"p{i}")], "rubric": "one", "rater": who,
          "scores": {"good": v[i]}, "comment": None} for who, v in (("ana", ANA), ("ben", BEN)) for i in range(4)])
    return doc["judge_run_id"]
