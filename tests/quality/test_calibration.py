"""Two people and a judge on the same outputs: kappa, its interval and alpha against hand-computed values;
the decision uses the judge above the trust gate and marks quality unverified below it."""
import json

import numpy as np
import pytest

from core.quality.agreement import quadratic_weighted_kappa
from core.quality.calibration import Gate, judge_calibration, kappa_interval, krippendorff_alpha
from core.quality.judge import JudgeModel, run_judge
from core.quality.rubrics import import_rubric
from core.store import quality as qstore
from tests.support.judge_server import JudgeServer
from tests.support.quality_run import make_run

RUBRIC = {"name": "one", "description": "one criterion",
          "criteria": [{"name": "good", "description": "is it good", "scale": [1, 3], "weight": 1}]}
JUDGE = [1, 2, 3, 2]
ANA = [1, 2, 3, 3]
BEN = [1, 2, 2, 3]


@pytest.fixture
def scored(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(tmp_path / "c.duckdb"))
    import_rubric(dict(RUBRIC))
    ids = make_run("rc", {f"p{i}": f"task {i}" for i in range(4)},
                   {("m-a", f"p{i}"): f"output {i}" for i in range(4)}, extra_requests=False)

    def script(body):
        i = int(body["messages"][1]["content"].split("<<<CANDIDATE_OUTPUT ")[1].split(">>>\n", 1)[1].split("\n")[0][-1])
        return json.dumps({"rationale": "r", "scores": {"good": JUDGE[i]}})

    with JudgeServer(script) as srv:
        doc = run_judge("rc", "one", JudgeModel("big-judge", "openai", srv.base_url, timeout=10))
    assert doc["failed"] == 0
    qstore.save_human_scores(
        [{"run_id": "rc", "request_id": ids[("m-a", f"p{i}")], "rubric": "one", "rater": who, "scores": {"good": v[i]},
          "comment": None} for who, v in (("ana", ANA), ("ben", BEN)) for i in range(4)])
    return doc["judge_run_id"]


def test_kappa_interval_and_alpha_against_hand_computed_values(scored):
    cal = judge_calibration("rc", scored)
    ov = cal["agreement"]["good"]
    # pairs (judge, person): (1,1)(2,2)(3,3)(2,3) with ana, (1,1)(2,2)(3,2)(2,3) with ben; n = 8
    # sum (x-y)^2 = 3; sum_i sum_j (x_i - y_j)^2 = 2*15 + 4*5 + 2*11 = 72, /n = 9 -> kappa = 1 - 3/9 = 2/3
    assert ov["n"] == 8 and ov["n_outputs"] == 4
    assert ov["kappa_weighted"] == pytest.approx(2 / 3)
    assert ov["exact"] == pytest.approx(5 / 8) and ov["within_one"] == 1.0
    assert ov["confusion"] == {"labels": [1, 2, 3], "matrix": [[2, 0, 0], [0, 2, 2], [0, 1, 1]]}
    # Krippendorff's ordinal alpha between ana and ben: coincidences o11=2, o22=2, o33=2, o23=o32=1;
    # n1=2, n2=3, n3=3, n=8; delta^2(1,2)=6.25, (1,3)=30.25, (2,3)=9 -> D_o sum = 18, D_e sum = 600
    # alpha = 1 - (n-1) * 18 / 600 = 1 - 126/600 = 0.79
    assert ov["alpha_people"] == pytest.approx(0.79)
    assert cal["agreement"]["overall"]["alpha_people"] == pytest.approx(0.79)
    assert cal["raters"] == ["ana", "ben"]
    # the interval resamples the 4 outputs (each keeps its 2 pairs): recomputed here independently
    items = [(f"o{i}", JUDGE[i], who[i]) for i in range(4) for who in (ANA, BEN)]
    rng = np.random.default_rng(0)
    vals = []
    for _ in range(2000):
        pick = rng.integers(0, 4, 4)
        xs = [JUDGE[k] for k in pick for _ in (0, 1)]
        ys = [h for k in pick for h in (ANA[k], BEN[k])]
        v = quadratic_weighted_kappa(xs, ys)
        if v is not None:
            vals.append(v)
    assert (ov["kappa_ci_low"], ov["kappa_ci_high"]) == pytest.approx((np.quantile(vals, 0.025), np.quantile(vals, 0.975)))
    assert ov["kappa_ci_low"] <= 2 / 3 <= ov["kappa_ci_high"]
    assert kappa_interval([("a", 1, 1), ("b", 2, 2), ("c", 3, 3)]) == (1.0, 1.0)
    # biggest disagreements carry both scores and the rater
    assert {(d["judge"], d["human"], d["rater"]) for d in cal["disagreements"]} == {(2.0, 3.0, "ana"), (3.0, 2.0, "ben"), (2.0, 3.0, "ben")}
    assert krippendorff_alpha({"u": {"ana": 1}}, ["ana", "ben"]) is None
    assert cal["health"]["state"] == "ok" and cal["health"]["parsed"] == 4


def test_decision_uses_the_judge_above_the_gate_and_marks_quality_unverified_below(scored):
    from core.decision.data import load_candidates
    from core.decision import engine, export
    from core.quality.scores import quality_report

    # prefer the judge: with 4 co-scored outputs it passes a gate of 4, not the default of 20
    above = quality_report("rc", prefer="judge", gate=Gate(0.6, 4))
    assert above["gate"]["trusted"] is True
    assert above["models"][0]["quality"]["source"] == "judge" and above["models"][0]["quality"]["verified"]
    below = quality_report("rc", prefer="judge", gate=Gate(0.7, 4))     # kappa 0.67 < 0.7
    assert below["gate"]["trusted"] is False and "kappa 0.67" in below["gate"]["reason"]
    assert below["models"][0]["quality"]["source"] == "human"         # people's scores where they exist

    # a model nobody scored by hand keeps the judge's number, marked unverified in the matrix and exports
    make_run("rd", {"p0": "task 0"}, {("m-b", "p0"): "output 0"}, extra_requests=False)
    from core.store import connect
    with connect() as con:
        for run, model in (("rc", "m-a"), ("rd", "m-b")):
            con.execute("INSERT INTO run_models (run_id, model, backend, concurrency, status) "
                        "VALUES (?, ?, 'openai', 1, 'ok')", [run, model])
    with JudgeServer([json.dumps({"rationale": "r", "scores": {"good": 3}})]) as srv:
        run_judge("rd", "one", JudgeModel("big-judge", "openai", srv.base_url, timeout=10))
    cands = load_candidates(["rd"], gate=Gate())
    q = cands[0].quality
    assert q["verified"] is False and q["source"] == "judge"
    assert any(n.startswith("quality unverified: judge not calibrated: no output scored by both") for n in cands[0].notes)
    result = engine.decide(cands, "quality=1", n_samples=100, n_boot=10)
    assert "quality unverified" in "; ".join(result["candidates"][0]["flags"])
    csv_text = export.csv_text(result)
    assert csv_text.splitlines()[0].endswith(",flags,quality_status") and csv_text.splitlines()[1].endswith(",unverified")
    # the same judge above a gate it passes in run rc: verified
    cands = load_candidates(["rc"], gate=Gate(0.6, 4))
    assert cands[0].quality["verified"] is True
    assert not any("unverified" in n for n in cands[0].notes)
