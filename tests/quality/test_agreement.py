"""Agreement figures against a hand-computed example, alone and through the whole pipeline
(judge scores from a scripted server + human scores from an annotation file -> `scores`)."""
import csv
import io
import json
import math

import pytest

from core.quality.agreement import average_ranks, quadratic_weighted_kappa, spearman
from core.quality.blind import export_annotations, import_annotations
from core.quality.judge import JudgeModel, run_judge
from core.quality.rubrics import import_rubric
from core.quality.scores import quality_report
from tests.support.judge_server import JudgeServer
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated

# Hand-computed example (5 items, scale 1..5):
#   judge x = [1, 2, 3, 4, 5]      people y = [2, 2, 3, 5, 4]
# Spearman: ranks x = [1, 2, 3, 4, 5]; y sorted is 2,2,3,4,5 so the tied 2s share rank 1.5:
#   ranks y = [1.5, 1.5, 3, 5, 4]; both means are 3.
#   dx = [-2, -1, 0, 1, 2], dy = [-1.5, -1.5, 0, 2, 1]
#   sum dx*dy = 3 + 1.5 + 0 + 2 + 2 = 8.5; sum dx^2 = 10; sum dy^2 = 2.25 + 2.25 + 0 + 4 + 1 = 9.5
#   rho = 8.5 / sqrt(10 * 9.5) = 8.5 / sqrt(95) = 0.872082...
# Quadratic-weighted kappa, weights w_ij = (i-j)^2 / (k-1)^2 with k = 5, so (i-j)^2 / 16:
#   observed: sum of w over the 5 items = ((1-2)^2 + 0 + 0 + (4-5)^2 + (5-4)^2) / 16 = 3/16
#   expected from the marginals, E_ij = row_i * col_j / n: judge rows 1,2,3,4,5 once each;
#   people columns 2 twice, 3, 4, 5 once.  sum_ij row_i col_j (i-j)^2 = n*sum x^2 + n*sum y^2 - 2*sum x*sum y
#     = 5*55 + 5*58 - 2*15*16 = 275 + 290 - 480 = 85, so sum w*E = 85 / (16 * 5) = 85/80
#   kappa = 1 - (3/16) / (85/80) = 1 - 240/1360 = 1 - 3/17 = 14/17 = 0.823529...
X = [1, 2, 3, 4, 5]
Y = [2, 2, 3, 5, 4]
RHO = 8.5 / math.sqrt(95)
KAPPA = 14 / 17


def test_hand_computed_example():
    assert list(average_ranks(Y)) == [1.5, 1.5, 3, 5, 4]
    assert spearman(X, Y) == pytest.approx(RHO, abs=1e-12)
    assert quadratic_weighted_kappa(X, Y) == pytest.approx(KAPPA, abs=1e-12)


def test_cohen_matrix_form_agrees():
    # the textbook confusion-matrix computation, written out independently
    k = 5
    n = len(X)
    O = [[0] * k for _ in range(k)]
    for a, b in zip(X, Y):
        O[a - 1][b - 1] += 1
    rows = [sum(r) for r in O]
    cols = [sum(O[i][j] for i in range(k)) for j in range(k)]
    w = [[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)]
    num = sum(w[i][j] * O[i][j] for i in range(k) for j in range(k))
    den = sum(w[i][j] * rows[i] * cols[j] / n for i in range(k) for j in range(k))
    assert 1 - num / den == pytest.approx(quadratic_weighted_kappa(X, Y))


def test_edge_cases():
    assert spearman([3], [3]) is None and quadratic_weighted_kappa([3], [3]) is None
    assert spearman([3, 3, 3], [1, 2, 3]) is None          # constant side: undefined, not 0
    assert quadratic_weighted_kappa([3, 3], [3, 3]) is None  # no expected disagreement
    assert spearman([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert quadratic_weighted_kappa([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_pipeline_agreement_matches_hand_example(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "a.duckdb")))
    import_rubric(dict(TEST_RUBRIC))
    prompts = {f"p{i}": f"task {i}" for i in range(1, 6)}
    make_run("ra", prompts, {("m-a", f"p{i}"): f"output {i}" for i in range(1, 6)}, extra_requests=False)

    # judge: coverage = X, faithfulness always 3
    def script(body):
        user = body["messages"][1]["content"]
        i = int(user.split("<<<CANDIDATE_OUTPUT ")[1].split(">>>\n", 1)[1].split("\n", 1)[0].split()[-1])
        return json.dumps({"rationale": "r", "scores": {"coverage": X[i - 1], "faithfulness": 3}})

    with JudgeServer(script) as srv:
        doc = run_judge("ra", "notes", JudgeModel("big-judge", "openai", srv.base_url, timeout=10))
    assert doc["failed"] == 0

    # people: coverage = Y, faithfulness always 3, through an annotation file (blind order)
    text = export_annotations("ra", "notes", "ana")
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        i = int(r["output"].split()[-1])
        r["coverage"], r["faithfulness"] = str(Y[i - 1]), "3"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    assert import_annotations(buf.getvalue().encode(), rater="ana")["rows"] == 5

    rep = quality_report("ra")
    ag = rep["agreement"]
    assert ag["coverage"]["n"] == 5
    assert ag["coverage"]["spearman"] == pytest.approx(RHO)
    assert ag["coverage"]["kappa_weighted"] == pytest.approx(KAPPA)
    assert ag["faithfulness"] == {"spearman": None, "kappa_weighted": None, "n": 5}
    # overall pools both criteria on 0..1: x' = [0,.25,.5,.75,1] + [.5]*5, y' = [.25,.25,.5,1,.75] + [.5]*5
    # observed sum (x'-y')^2 = 3/16; expected = (10*3.125 + 10*3.1875 - 2*5*5.25)/10 = 10.625/10
    # kappa = 1 - 0.1875/1.0625 = 14/17. Ranks: x' -> [1,2,5.5,9,10,5.5*5], y' -> [1.5,1.5,5.5,10,9,5.5*5]
    # sum dx*dy = 18 + 14 + 15.75 + 15.75 = 63.5; sum dx^2 = 65; sum dy^2 = 64.5 -> rho = 63.5/sqrt(65*64.5)
    assert ag["overall"]["n"] == 10
    assert ag["overall"]["kappa_weighted"] == pytest.approx(14 / 17)
    assert ag["overall"]["spearman"] == pytest.approx(63.5 / math.sqrt(65 * 64.5))
    # human scores preferred: quality comes from people; with prefer="judge" from the judge
    q_h = {m["model"]: m["quality"] for m in rep["models"]}["m-a"]
    assert q_h["source"] == "human"
    # people: coverage Y normalised mean = (.25+.25+.5+1+.75)/5 = .55, faithfulness .5 -> (2*.55 + .5)/3
    assert q_h["mean"] == pytest.approx((2 * 0.55 + 0.5) / 3)
    # prefer="judge", but the judge is below the default gate (5 co-scored outputs < 20): people's scores
    rep_gated = quality_report("ra", prefer="judge")
    assert rep_gated["gate"]["trusted"] is False and "only 5 co-scored outputs" in rep_gated["gate"]["reason"]
    assert {m["model"]: m["quality"] for m in rep_gated["models"]}["m-a"]["source"] == "human"
    # with the gate at 5 outputs the judge (kappa 14/17 >= 0.6) is trusted and its scores are used
    from core.quality.calibration import Gate
    q_j = {m["model"]: m["quality"] for m in quality_report("ra", prefer="judge", gate=Gate(0.6, 5))["models"]}["m-a"]
    assert q_j["source"] == "judge" and q_j["verified"] is True
    assert q_j["mean"] == pytest.approx((2 * 0.5 + 0.5) / 3)
