"""The decision matrix on hand-computed cases: normalisation, weights, ranking, constraints, licenses."""
import numpy as np
import pytest

from core.decision.engine import decide, prepare, evaluate, weight_vector
from core.decision.licenses import license_info
from core.decision.matrix import Candidate, normalize, parse_constraint, parse_weights
from core.errors import UserError


def cand(model, *, e2e, tpot=20.0, mem=1000.0, disk=500.0, q=0.5, lic="mit", n=5, **kw):
    """A candidate whose every request took exactly `e2e` ms (so p95 == e2e) and `tpot` ms per token."""
    quality = None if q is None else {"mean": q, "ci_low": q, "ci_high": q, "n": 10, "source": "human"}
    return Candidate(run_id="r", model=model, backend="foundry", e2e_ms=[e2e] * n, ttft_ms=[e2e / 10] * n,
                     tpot_ms=[tpot] * n, peak_rss_mb=mem, disk_mb=disk, license=lic, quality=quality, **kw)


def by_model(result):
    return {r.model: r for r in result.candidates}


def test_minmax_normalisation_and_scores_hand_computed():
    # latency 100/200/300 ms -> 1, .5, 0 ; decode speed 1000/tpot = 50, 25, 12.5 tok/s -> 1, 1/3, 0
    # memory 1000/2000/1500 -> 1, 0, .5 ; quality .9/.6/.3 -> 1, .5, 0 ; disk all equal -> 1 ; license mit -> 1
    cs = [cand("a", e2e=100, tpot=20, mem=1000, q=0.3), cand("b", e2e=200, tpot=40, mem=2000, q=0.6),
          cand("c", e2e=300, tpot=80, mem=1500, q=0.9)]
    res = by_model(decide(cs, "latency=0.4,decode_speed=0.2,memory=0.2,quality=0.2", n_boot=0))
    assert res["a"].normalized == pytest.approx({"latency_ms": 1, "decode_tokens_per_s": 1, "peak_rss_mb": 1,
                                                    "quality": 0, "disk_mb": 1, "license": 1,
                                                    "time_to_notes_ms": 0, "energy_j": 0})  # not measured: 0
    assert res["b"].normalized["latency_ms"] == pytest.approx(0.5)
    assert res["b"].normalized["decode_tokens_per_s"] == pytest.approx(1 / 3)
    assert res["c"].normalized["peak_rss_mb"] == pytest.approx(0.5)
    assert res["b"].criteria["decode_tokens_per_s"] == pytest.approx(25.0)
    assert res["a"].score == pytest.approx(0.4 * 1 + 0.2 * 1 + 0.2 * 1 + 0.2 * 0)
    assert res["b"].score == pytest.approx(0.4 * 0.5 + 0.2 / 3 + 0.2 * 0 + 0.2 * 0.5)
    assert res["c"].score == pytest.approx(0.4 * 0 + 0 + 0.2 * 0.5 + 0.2 * 1)
    assert [res[m].rank for m in "abc"] == [1, 2, 3]  # .8, .367, .3


def test_ranking_follows_weights():
    cs = [cand("fast", e2e=100, q=0.4), cand("good", e2e=900, q=0.9)]
    assert decide(cs, "latency=1", n_boot=0).winner.startswith("fast")
    assert decide(cs, "quality=1", n_boot=0).winner.startswith("good")
    assert decide(cs, "quality first", n_boot=0).winner.startswith("good")


def test_rank_normalisation_with_ties():
    raw = np.array([[100.0, 10, 1, 0.5, 10, 1, np.nan, np.nan], [200.0, 10, 2, 0.7, 20, 1, np.nan, np.nan],
                    [200.0, 30, 3, np.nan, 30, 0.5, np.nan, np.nan]])
    out = normalize(raw, np.array([True, True, True]), "rank")
    # latency: 100 best (1); the two 200s share the mean of ranks 0 and .5 -> .25
    assert out[:, 0] == pytest.approx([1.0, 0.25, 0.25])
    assert out[:, 1] == pytest.approx([0.25, 0.25, 1.0])  # throughput, higher is better
    assert out[:, 3] == pytest.approx([0.0, 1.0, 0.0])  # unknown quality counts as 0
    assert out[:, 5] == pytest.approx([1.0, 1.0, 0.5])  # license keeps its fixed scale


def test_normalisation_is_over_passing_candidates_only():
    cs = [cand("a", e2e=100, mem=1000), cand("b", e2e=300, mem=1000), cand("huge", e2e=10000, mem=9000)]
    res = by_model(decide(cs, "latency=1", constraints=["peak_rss_mb<=2000"], n_boot=0))
    assert res["b"].normalized["latency_ms"] == pytest.approx(0.0)  # not 0.98 (range set by the failing one)
    assert res["huge"].normalized["latency_ms"] == 0.0  # clipped into 0..1
    assert not res["huge"].passes and res["huge"].rank is None


def test_all_equal_criterion_gives_one():
    cs = [cand("a", e2e=100), cand("b", e2e=100)]
    res = decide(cs, "latency=1", n_boot=0)
    assert [r.normalized["latency_ms"] for r in res.candidates] == [1.0, 1.0]


def test_weights_subset_normalised_and_bad_weights_refused():
    w = parse_weights("latency=3,quality=1")
    assert w == pytest.approx({"latency": 0.75, "decode_speed": 0, "memory": 0, "quality": 0.25, "disk": 0, "license": 0,
                               "time_to_notes": 0, "energy": 0})
    assert sum(parse_weights("balanced").values()) == pytest.approx(1.0)
    for bad, msg in [("speed=1", "unknown weight 'speed'"), ("latency=-1", ">= 0"), ("latency=0", "sum to 0"),
                     ("latency=abc", "not a number"), ("latency", "NAME=NUMBER")]:
        with pytest.raises(UserError, match=msg):
            parse_weights(bad)
    assert weight_vector(np.array([1.0, 1, 0, 0, 0, 2, 0, 0])) == pytest.approx([0.25, 0.25, 0, 0, 0, 0.5, 0, 0])


def test_constraint_parsing():
    c = parse_constraint("peak_rss_mb<=2000")
    assert (c.field, c.op, c.value) == ("peak_rss_mb", "<=", 2000.0)
    assert parse_constraint(" quality >= 0.6 ").value == 0.6
    assert parse_constraint("e2e_p95_ms<=3000").field == "e2e_p95_ms"
    lic = parse_constraint("license in Apache-2.0, MIT")
    assert lic.field == "license" and lic.value == ("apache-2.0", "mit")
    for bad in ["peak_rss_mb<=lots", "colour<=3", "peak_rss_mb", "license in nonsense-license"]:
        with pytest.raises(UserError):
            parse_constraint(bad)


def test_failing_candidates_stay_with_reasons_and_never_win():
    cs = [
        cand("best-but-big", e2e=100, mem=5000, q=0.9),
        cand("ok", e2e=500, mem=1000, q=0.7),
        cand("unscored", e2e=50, mem=500, q=None),
        Candidate(run_id="r", model="no-mem", backend="openai", e2e_ms=[80] * 5, ttft_ms=[8] * 5, tpot_ms=[20] * 5,
                  peak_rss_mb=None, disk_mb=100, license="mit",
                  quality={"mean": 0.95, "ci_low": 0.9, "ci_high": 1, "n": 5, "source": "judge"}),
        Candidate(run_id="r", model="crashed", backend="foundry", status="failed", error="out of memory"),
    ]
    res = decide(cs, "latency=0.5,quality=0.5", constraints=["peak_rss_mb<=2000", "quality>=0.6", "e2e_p95_ms<=3000"],
                 n_boot=0)
    rows = by_model(res)
    assert len(res.candidates) == 5  # nothing silently dropped
    assert res.winner.startswith("ok |")
    assert rows["ok"].passes and rows["ok"].rank == 1 and rows["ok"].failed_constraints == []
    assert rows["best-but-big"].failed_constraints == ["peak_rss_mb 5000 violates peak_rss_mb<=2000"]
    assert rows["best-but-big"].score >= rows["ok"].score  # as high a score, still not the winner
    assert rows["best-but-big"].win_probability == 0.0
    assert rows["unscored"].failed_constraints == ["quality unknown"]
    assert rows["unscored"].criteria["quality"] is None and rows["unscored"].normalized["quality"] == 0.0
    assert rows["no-mem"].failed_constraints == ["peak_rss_mb unknown"]
    assert rows["crashed"].failed_constraints[0] == "benchmark failed: out of memory"
    assert "quality unknown" in rows["crashed"].failed_constraints
    assert [r.passes for r in res.candidates] == [True, False, False, False, False]


def test_no_candidate_passes_means_no_winner():
    res = decide([cand("a", e2e=100, mem=5000)], "latency=1", constraints=["peak_rss_mb<=10"], n_boot=0)
    assert res.winner is None and res.candidates[0].rank is None


def test_unknown_license_flagged_never_permissive():
    info = license_info("WTFPL-custom")
    assert info["id"] == "unknown" and info["known"] is False and info["commercial_use"] is None
    assert "not in data/licenses.json" in info["flag"]
    assert license_info(None)["flag"] == "license unknown: commercial use not established"
    assert license_info("Apache 2.0")["id"] == "apache-2.0" and license_info("MIT")["known"]
    assert license_info("cc-by-nc-4.0")["commercial_use"] is False
    assert license_info("gemma")["commercial_use"] == "conditional"
    assert license_info("llama3.2")["commercial_use"] == "conditional"

    cs = [cand("custom", e2e=100, lic="WTFPL-custom"), cand("free", e2e=100, lic="mit"),
          cand("nc", e2e=100, lic="cc-by-nc-4.0"), cand("gem", e2e=100, lic="gemma"), cand("none", e2e=100, lic=None)]
    rows = by_model(decide(cs, "license=1", require_commercial=True, n_boot=0))
    assert rows["custom"].criteria["license"] == "unknown"
    assert rows["custom"].normalized["license"] == 0.0
    assert any("WTFPL-custom" in f and "not as permissive" in f for f in rows["custom"].flags)
    assert rows["custom"].failed_constraints == ["license unknown: commercial use not established"]
    assert rows["none"].failed_constraints == ["license unknown: commercial use not established"]
    assert rows["nc"].failed_constraints == ["license cc-by-nc-4.0 does not allow commercial use"]
    assert rows["gem"].passes and rows["gem"].normalized["license"] == 0.5
    assert rows["free"].passes and rows["free"].rank == 1

    rows = by_model(decide(cs, "license=1", constraints=["license in mit,apache-2.0"], n_boot=0))
    assert rows["gem"].failed_constraints == ["license gemma not in allowed licenses (mit, apache-2.0)"]
    assert not rows["custom"].passes and rows["free"].passes


def test_speed_criterion_is_decode_speed_never_aggregate_throughput():
    c = cand("a", e2e=1000, tpot=25.0)
    c.throughput_tok_s = 13.0                                # the level's aggregate: its own name
    m = c.metrics()
    assert m["decode_tokens_per_s"] == pytest.approx(40.0)  # 1 / 25 ms
    assert m["throughput_tok_s"] == pytest.approx(13.0)
    assert m["e2e_p95_ms"] == pytest.approx(1000.0)
    from core.decision import criteria
    from core.decision.matrix import parse_constraints, parse_weights
    assert criteria.get("decode_speed").key == criteria.get("decode_speed").metric == "decode_tokens_per_s"
    with pytest.raises(UserError, match="decode speed"):
        parse_weights("throughput=1")
    (con,) = parse_constraints(["throughput_tok_s>=20"])
    assert con.field == "throughput_tok_s"                   # a constraint on aggregate throughput stays that
    (con,) = parse_constraints(["decode_speed>=20"])
    assert con.field == "decode_tokens_per_s"


def test_latency_metric_choice():
    a = Candidate(run_id="r", model="a", backend="x", e2e_ms=[100] * 5, ttft_ms=[90] * 5, tpot_ms=[10] * 5, license="mit")
    b = Candidate(run_id="r", model="b", backend="x", e2e_ms=[200] * 5, ttft_ms=[10] * 5, tpot_ms=[10] * 5, license="mit")
    assert decide([a, b], "latency=1", n_boot=0).winner.startswith("a")
    res = decide([a, b], "latency=1", latency_metric="ttft_p95", n_boot=0)
    assert res.winner.startswith("b") and by_model(res)["b"].criteria["latency_ms"] == 10.0
    with pytest.raises(UserError):
        prepare([a], latency_metric="e2e_p50")


def test_prepare_once_evaluate_many_weights():
    cs = [cand("fast", e2e=100, q=0.4), cand("good", e2e=900, q=0.9)]
    prep = prepare(cs, n_boot=0)
    assert evaluate(prep, "latency=1").winner.startswith("fast")
    assert evaluate(prep, {"quality": 2, "latency": 1}).winner.startswith("good")


def test_single_reference_value_does_not_lift_failing_rows():
    # one passing candidate: it gets 1; a failing one that is worse gets 0, not 1
    cs = [cand("ok", e2e=100, q=0.8, mem=1000), cand("bad", e2e=300, q=0.3, mem=9000)]
    for method in ("minmax", "rank"):
        rows = by_model(decide(cs, "quality=0.5,latency=0.5", constraints=["peak_rss_mb<=2000"], method=method,
                               n_boot=0))
        assert rows["ok"].normalized["quality"] == 1.0 and rows["bad"].normalized["quality"] == 0.0
        assert rows["bad"].normalized["latency_ms"] == 0.0 and rows["bad"].score < rows["ok"].score


def test_a_decision_is_a_typed_record_read_by_fields_and_its_document_is_to_dict():
    from collections.abc import Mapping

    from core.decision.engine import CandidateResult, as_document
    res = decide([cand("fast", e2e=100, q=0.4), cand("good", e2e=900, q=0.9)], "latency=1", n_boot=0)
    assert not isinstance(res, Mapping)
    with pytest.raises(TypeError):
        res["winner"]                      # no second, dict-shaped way to read it
    assert all(isinstance(r, CandidateResult) for r in res.candidates) and res.winner == res.candidates[0].candidate
    doc = as_document(res)                 # what writers and a saved record read: the --json document
    assert doc["winner"] == res.winner and [r["candidate"] for r in doc["candidates"]] == [r.candidate for r in res.candidates]
    assert as_document(doc) is doc
