"""How robust the winner is: flip points on a constructed case, ties inside noise, win probability."""
import numpy as np
import pytest

from core.decision import robustness
from core.decision.engine import decide
from core.decision.criteria import NAMES as CRITERIA
from core.decision.matrix import Candidate


def cand(model, e2e, q, *, sd=0.0, n=30, seed=0, q_ci=0.0, mem=1000.0, lic="mit"):
    rng = np.random.default_rng(seed)
    e2e_ms = e2e * (1 + sd * rng.standard_normal(n))
    return Candidate(run_id="r", model=model, backend="foundry", e2e_ms=e2e_ms, ttft_ms=e2e_ms / 10,
                     tpot_ms=np.full(n, 20.0), peak_rss_mb=mem, disk_mb=100.0, license=lic,
                     quality={"mean": q, "ci_low": q - q_ci, "ci_high": q + q_ci, "n": n, "source": "human"})


def test_flip_point_of_a_constructed_case():
    # Normalised: A latency 1, quality 0.2 (q .36 on a .2..1 range) ; B latency 0, quality 1 ; C in between.
    # Quality weight t, latency 1 - t (it is the only other weight): A = (1 - t) + 0.2 t, B = t.
    # They cross at 1 - 0.8 t = t -> t = 1 / 1.8 = 0.5556. C = (1-t)*.5 + .2t stays below A for t < .5556.
    cs = [cand("A", 100, 0.36), cand("B", 300, 1.0), cand("C", 200, 0.2)]
    res = decide(cs, "latency=0.5,quality=0.5", n_boot=0)
    rows = {r.model: r for r in res.candidates}
    assert rows["A"].normalized["quality"] == pytest.approx(0.2)
    assert res.winner.startswith("A")
    flips = res.robustness.flip_details
    assert flips["quality"]["value"] == pytest.approx(1 / 1.8)
    assert flips["quality"]["direction"] == "up"
    assert flips["quality"]["new_winner"].startswith("B")
    # latency is the mirror image: A wins while latency > 1 - 1/1.8
    assert flips["latency"]["value"] == pytest.approx(1 - 1 / 1.8)
    assert flips["latency"]["direction"] == "down"
    # every candidate has the same memory, disk and license: those weights never change the winner
    for name in ("memory", "disk", "license"):
        assert flips[name] is None
    assert set(flips) == set(CRITERIA)
    assert res.to_dict()["flip_points"] == {k: v and v["value"] for k, v in flips.items()}   # the --json document
    # check against brute force just either side of the flip point
    t = flips["quality"]["value"]
    assert decide(cs, {"latency": 1 - (t - 1e-3), "quality": t - 1e-3}, n_boot=0).winner.startswith("A")
    assert decide(cs, {"latency": 1 - (t + 1e-3), "quality": t + 1e-3}, n_boot=0).winner.startswith("B")


def test_flip_point_brute_force_on_random_matrices():
    rng = np.random.default_rng(3)
    for _ in range(15):
        norm = rng.random((6, len(CRITERIA)))
        w = rng.dirichlet(np.ones(len(CRITERIA)))
        ids = [str(i) for i in range(6)]
        flips = robustness.flip_points(norm, w, CRITERIA, ids)
        top = int(np.argmax(norm @ w))
        for i, name in enumerate(CRITERIA):
            grid = np.linspace(0, 1, 1001)
            others = np.delete(np.arange(len(CRITERIA)), i)
            winners = []
            for t in grid:
                wt = np.zeros_like(w)
                wt[i] = t
                wt[others] = w[others] * (1 - t) / (1 - w[i])
                winners.append(int(np.argmax(norm @ wt)))
            changed = [t for t, k in zip(grid, winners) if k != top]
            if flips[name] is None:
                assert not changed
            else:
                nearest = min(changed, key=lambda t: abs(t - w[i]))
                assert abs(nearest - flips[name]["value"]) <= 1e-3


def test_ties_inside_noise():
    # A and B: the same latency distribution (noise 10%); C: three times slower. Latency is the only weight.
    cs = [cand("A", 1000, 0.5, sd=0.1, seed=1), cand("B", 1010, 0.5, sd=0.1, seed=2),
          cand("C", 3000, 0.5, sd=0.02, seed=3)]
    rows = {r.model: r for r in decide(cs, "latency=1").candidates}
    assert [t.split(" |")[0] for t in rows["A"].tie_with] == ["B"]
    assert [t.split(" |")[0] for t in rows["B"].tie_with] == ["A"]
    assert rows["C"].tie_with == []
    # quality differences inside the scores' own confidence intervals are ties too
    cs = [cand("P", 1000, 0.70, q_ci=0.1), cand("Q", 1000, 0.72, q_ci=0.1), cand("R", 1000, 0.2, q_ci=0.02)]
    rows = {r.model: r for r in decide(cs, "quality=1").candidates}
    assert [t.split(" |")[0] for t in rows["Q"].tie_with] == ["P"]
    assert rows["R"].tie_with == []
    # without noise (n_boot=0) only exact equality is a tie
    rows = {r.model: r for r in decide(cs, "quality=1", n_boot=0).candidates}
    assert rows["Q"].tie_with == []


def test_failing_candidates_are_never_tied_or_winning():
    cs = [cand("A", 1000, 0.5, sd=0.1, seed=1), cand("B", 1000, 0.5, sd=0.1, seed=2, mem=9000)]
    rows = {r.model: r for r in decide(cs, "latency=1", constraints=["peak_rss_mb<=2000"]).candidates}
    assert rows["A"].tie_with == [] and rows["B"].tie_with == []
    assert rows["A"].win_probability == 1.0 and rows["B"].win_probability == 0.0


def test_win_probability():
    # dominant candidate wins every draw; the probabilities of passing candidates sum to 1
    cs = [cand("best", 100, 0.9), cand("mid", 200, 0.5), cand("worst", 300, 0.1)]
    rows = {r.model: r for r in decide(cs, "latency=0.5,quality=0.5", n_boot=0).candidates}
    assert rows["best"].win_probability == 1.0 and rows["worst"].win_probability == 0.0
    # a near tie under 50/50 weights splits the wins roughly in half
    norm = np.zeros((2, len(CRITERIA)))
    norm[0, 0], norm[1, 3] = 1.0, 1.0  # one is all latency, the other all quality
    w = np.array([0.5, 0, 0, 0.5, 0, 0, 0, 0])
    p = robustness.win_probability(norm, w, n=10_000, rng=np.random.default_rng(0))
    assert p.sum() == pytest.approx(1.0) and 0.45 < p[0] < 0.55
    # Dirichlet draws stay on the active criteria, sum to 1 and centre on the chosen weights
    W = robustness.sample_weights(np.array([0.6, 0, 0.1, 0.3, 0, 0, 0, 0]), n=20_000, rng=np.random.default_rng(1))
    assert np.allclose(W.sum(axis=1), 1) and (W[:, [1, 4, 5, 6, 7]] == 0).all()
    assert W.mean(axis=0) == pytest.approx([0.6, 0, 0.1, 0.3, 0, 0, 0, 0], abs=0.01)


def test_win_probability_samples_quality_from_its_interval():
    import numpy as np
    from core.decision.robustness import win_probability
    # all weight on quality: weights alone can never flip A (0.6) over B (0.5) ...
    norm = np.array([[1.0], [0.0]])
    w = np.array([1.0])
    assert win_probability(norm, w, n=1000).tolist() == [1.0, 0.0]
    # ... but when the quality draws overlap (B beats A in 30 of 100 draws), it is no longer certain
    draws = np.array([[1.0, 0.0]] * 70 + [[0.0, 1.0]] * 30)
    p = win_probability(norm, w, n=1000, column_samples=(0, draws))
    assert p.tolist() == [0.7, 0.3]
