"""What a newcomer reads first on the Decision page: the meeting summariser preset weighs time to notes and
quality, a weight nobody has measured says so, the matrix leads with what decides, the names on the
quality-vs-latency chart never cover one another."""
import numpy as np

from core.decision import charts, engine, report, view
from core.decision.criteria import CRITERIA, UNKNOWN
from core.decision.matrix import PRESETS, Candidate


def _cand(name, e2e_ms, notes_ms=None, q=0.7) -> Candidate:
    rng = np.random.default_rng(len(name))
    e2e = e2e_ms * (1 + 0.02 * rng.standard_normal(12))
    extra = {} if notes_ms is None else {"time_to_notes_ms": notes_ms}
    return Candidate(run_id="r", model=name, backend="openai", e2e_ms=e2e, ttft_ms=e2e / 10,
                     tpot_ms=20 + rng.standard_normal(12), peak_rss_mb=900.0, disk_mb=300.0, license="mit",
                     quality={"mean": q, "ci_low": q - 0.05, "ci_high": q + 0.05, "n": 10, "source": "human"},
                     extra_metrics=extra)


def test_the_meeting_summariser_ranks_on_time_to_notes_and_quality_most():
    w = PRESETS["meeting summariser"]
    assert w.get("latency", 0) == 0 and w["time_to_notes"] > 0
    assert max(w, key=w.get) == "quality"
    # quick on a short request, slow on a whole meeting (prefill) against the reverse
    cands = [_cand("short-prompt-sprinter", 500, notes_ms=90_000), _cand("long-meeting-reader", 900, notes_ms=30_000)]
    first = engine.decide(cands, "latency first", n_boot=20, n_samples=100).candidates[0]
    assert first.model == "short-prompt-sprinter"
    top = engine.decide(cands, "meeting summariser", n_boot=20, n_samples=100).candidates[0]
    assert top.model == "long-meeting-reader"


def test_a_weight_nobody_measured_is_named_with_where_it_comes_from():
    res = engine.decide([_cand("a", 500), _cand("b", 900)], "meeting summariser", n_boot=20, n_samples=100)
    lines = view.unmeasured_weights(res)
    assert len(lines) == 1 and lines[0].startswith(f"Time to notes weighs 30% but is {UNKNOWN} for every candidate")
    assert "length sweep" in lines[0]
    measured = engine.decide([_cand("a", 500, 1000.0), _cand("b", 900)], "meeting summariser", n_boot=20, n_samples=100)
    assert view.unmeasured_weights(measured) == []     # one candidate measured: the weight separates them


def test_the_matrix_leads_with_rank_score_and_the_weighted_criteria_ids_last():
    res = engine.decide([_cand("a", 500), _cand("b", 900)], "balanced", n_boot=20, n_samples=100)
    cols = list(view.matrix_frame(res).columns)
    w = res.weights
    weighted = sorted((c for c in CRITERIA if w.get(c.name, 0) > 0), key=lambda c: -w[c.name])   # heaviest first
    assert cols[:4] == ["rank", "candidate", "score", "win %"]
    assert [report.heading(c, "e2e_p95") for c in weighted] == cols[4:4 + len(weighted)]
    assert cols[4 + len(weighted)] == "why not ranked"
    assert cols.index("Time to notes (ms)") > cols.index("why not ranked")      # weighs 0 in "balanced"
    assert cols[-1] == "details (id)"


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_names_on_the_quality_latency_chart_never_overlap():
    import pandas as pd
    # three candidates within a few pixels of one another, and one far away
    known = pd.DataFrame({"candidate": ["SmolLM2 135M Instruct (int4)", "SmolLM2 135M Instruct (fp32)",
                                        "smollm2-135m-instruct-gguf", "Gemma 3 270M (int4)"],
                          "latency_ms": [1000.0, 1010.0, 1005.0, 4000.0], "quality": [0.50, 0.51, 0.505, 0.2]})
    x_max, width, height = 4600.0, 560, 360
    placed = charts.place_labels(known, x_max, width, height)
    assert len(placed) >= 3 and "Gemma 3 270M (int4)" in set(placed["candidate"])
    boxes = []
    for _, p in placed.iterrows():
        w = charts.LABEL_FONT_PX[0] * len(p["candidate"])
        x = p["label_x"] / x_max * width
        y = (1 - p["label_y"]) * height
        x0 = x if p["align"] == "left" else x - w
        boxes.append((x0, y - 7, x0 + w, y + 7))
        assert 0 <= x0 and x0 + w <= width                   # inside the plot
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
