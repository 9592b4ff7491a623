"""Two people and a judge on the same outputs: kappa and alpha against hand-computed values; the bootstrap
intervals against their properties (coverage of a known truth, width against n, seed); the decision uses the
judge above the trust gate and marks quality unverified below it."""
import json

import numpy as np
import pytest

from core.stats import bootstrap_ci
from core.quality.calibration import Gate, judge_calibration, kappa_interval, krippendorff_alpha
from core.quality.rubrics import import_rubric
from core.quality.judge import JudgeModel, run_judge
from tests.support.gated_store import RUBRIC, judge_and_people
from tests.support.judge_server import JudgeServer
from tests.support.quality_run import make_run
from tests.support.store import migrated


@pytest.fixture
def scored(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "c.duckdb")))
    import_rubric(dict(RUBRIC))
    ids = make_run("rc", {f"p{i}": f"task {i}" for i in range(4)},
                   {("m-a", f"p{i}"): f"output {i}" for i in range(4)}, extra_requests=False)
    return judge_and_people("rc", ids)


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
    # the interval is a real interval around the estimate (its properties are tested below, on simulated data)
    assert ov["kappa_ci_low"] < ov["kappa_ci_high"]
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
    assert "quality unverified" in "; ".join(result.candidates[0].flags)
    csv_text = export.csv_text(result)
    assert csv_text.splitlines()[0].endswith(",flags,quality_status") and csv_text.splitlines()[1].endswith(",unverified")
    # the same judge above a gate it passes in run rc: verified
    cands = load_candidates(["rc"], gate=Gate(0.6, 4))
    assert cands[0].quality["verified"] is True
    assert not any("unverified" in n for n in cands[0].notes)


# ------------------------------------------------------------------ the intervals' properties
# Simulated judge/person pairs with a known population kappa: X, Y standard normal with correlation rho have
# E(X-Y)^2 = 2(1-rho) and E(X-Y')^2 = 2 for independent Y', so the quadratic-weighted kappa is rho.

def _pairs(rng, n: int, rho: float) -> list[tuple[str, float, float]]:
    x = rng.standard_normal(n)
    y = rho * x + np.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    return [(f"o{i}", float(a), float(b)) for i, (a, b) in enumerate(zip(x, y))]


def test_kappa_interval_covers_the_true_kappa_about_95_percent_of_the_time():
    rng = np.random.default_rng(20261202)
    trials, rho, covered, widths = 200, 0.6, 0, []
    for _ in range(trials):
        lo, hi = kappa_interval(_pairs(rng, 60, rho), boot=400)
        covered += lo <= rho <= hi
        widths.append(hi - lo)
    # a 95% interval: about 190 of 200; a broken interval (too narrow, off-centre, or a point) misses far more
    assert 0.88 * trials <= covered <= 0.995 * trials, f"covered the true kappa in {covered} of {trials}"
    assert min(widths) > 0


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    trials, covered = 300, 0
    for _ in range(trials):
        lo, hi = bootstrap_ci(list(rng.normal(0.6, 0.2, 40)), n_boot=1000)
        covered += lo <= 0.6 <= hi
    assert 0.88 * trials <= covered <= 0.995 * trials, f"covered the true mean in {covered} of {trials}"


def test_intervals_shrink_as_n_grows_and_hold_the_estimate():
    from core.quality.agreement import quadratic_weighted_kappa
    rng = np.random.default_rng(3)
    widths = {}
    for n in (40, 160, 640):
        items = _pairs(rng, n, 0.6)
        lo, hi = kappa_interval(items, boot=500)
        point = quadratic_weighted_kappa([i[1] for i in items], [i[2] for i in items])
        assert lo <= point <= hi
        values = list(rng.normal(0.5, 0.2, n))
        mlo, mhi = bootstrap_ci(values)
        assert mlo <= float(np.mean(values)) <= mhi
        widths[n] = (hi - lo, mhi - mlo)
    # the width goes as 1/sqrt(n): about half for 4x the outputs
    for small, big in ((40, 160), (160, 640)):
        for k in (0, 1):
            assert 1.4 < widths[small][k] / widths[big][k] < 3.5, widths


def test_kappa_interval_resamples_outputs_not_pairs():
    """Two people scoring each output give two pairs that are not independent: the interval resamples outputs.
    Each output's pair given twice (two raters agreeing) keeps the width; taken as separate outputs it narrows."""
    items = _pairs(np.random.default_rng(11), 40, 0.5)
    one = kappa_interval(items)
    twice = kappa_interval([it for it in items for _ in (0, 1)])
    split = kappa_interval([(f"{k}-{r}", a, b) for k, a, b in items for r in (0, 1)])
    w1, w2, w3 = (hi - lo for lo, hi in (one, twice, split))
    assert w2 == pytest.approx(w1, rel=0.15)
    assert w3 < 0.85 * w1


def test_intervals_are_deterministic_with_a_seed():
    items = _pairs(np.random.default_rng(5), 30, 0.6)
    assert kappa_interval(items, seed=1) == kappa_interval(items, seed=1)
    assert kappa_interval(items, seed=1) != kappa_interval(items, seed=2)
    values = list(np.random.default_rng(6).normal(0.5, 0.2, 30))
    assert bootstrap_ci(values, seed=4) == bootstrap_ci(values, seed=4)
    assert bootstrap_ci(values, seed=4) != bootstrap_ci(values, seed=5)
    assert bootstrap_ci([0.5]) is None and kappa_interval([("a", 1.0, 1.0)]) == (None, None)
