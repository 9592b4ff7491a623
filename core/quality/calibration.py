"""How far to trust a judge: its agreement with people, the people's agreement among themselves, its biases.

A *judge* is (judge model, template version, rubric version): a judge run belongs to one. Its
calibration uses the outputs both it and at least one person scored ("co-scored outputs").

Agreement items are (output, criterion, rater) triples: each rater's score is paired with the judge's
on the same output and criterion (raters are not averaged, so every value stays on the scale).
- Quadratic-weighted Cohen's kappa (core.quality.agreement), per criterion and overall (overall pools
  every criterion after mapping each score onto 0..1 with its criterion's scale).
- Its 95% interval: a percentile bootstrap that resamples *outputs* (all the pairs of an output stay
  together, since they are not independent), B = 2000, seed 0.
- Spearman's rho; exact agreement (same score) and within-one (|judge - human| <= 1) on each
  criterion's own scale; a confusion matrix (rows: judge's score, columns: people's); the largest
  disagreements, with both scores.
- Krippendorff's alpha (ordinal) among people, when two or more raters scored the same outputs: the
  ceiling a judge can reach. Computed with the `krippendorff` package (units = output x criterion).

Bias: position bias = share of decided pairwise comparisons whose verdict flips when the order is
swapped; length bias = Spearman of score with output length (words), for the judge and, for
comparison, for people; self-preference = the judge is of a candidate's family (warned).

The trust gate: a judge's scores feed the decision on their own only when its overall kappa with
people is >= GATE_KAPPA (0.6) on >= GATE_MIN_OUTPUTS (20) co-scored outputs (both settable).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import UserError

from core.quality.agreement import quadratic_weighted_kappa, spearman

GATE_KAPPA = 0.6
GATE_MIN_OUTPUTS = 20
BOOT = 2000
TOP_DISAGREEMENTS = 10


@dataclass(frozen=True)
class Gate:
    min_kappa: float = GATE_KAPPA
    min_outputs: int = GATE_MIN_OUTPUTS

    def check(self, kappa: float | None, n_outputs: int) -> tuple[bool, str]:
        """(trusted, reason in one line)."""
        need = f"gate: kappa >= {self.min_kappa:g} on >= {self.min_outputs} co-scored outputs"
        if n_outputs == 0:
            return False, f"no output scored by both the judge and a person ({need})"
        if kappa is None:
            return False, f"kappa undefined on {n_outputs} co-scored outputs ({need})"
        if n_outputs < self.min_outputs:
            return False, f"only {n_outputs} co-scored outputs, kappa {kappa:.2f} ({need})"
        if kappa < self.min_kappa:
            return False, f"kappa {kappa:.2f} with people on {n_outputs} co-scored outputs ({need})"
        return True, f"kappa {kappa:.2f} with people on {n_outputs} co-scored outputs ({need})"


GATE_SETTINGS = ("quality.gate_min_kappa", "quality.gate_min_outputs")


def check_gate(min_kappa: float, min_outputs: int) -> Gate:
    """A gate from user input: one clear line when a value is out of range."""
    try:
        k, n = float(min_kappa), int(min_outputs)
    except (TypeError, ValueError):
        raise UserError(f"trust gate: kappa {min_kappa!r} and outputs {min_outputs!r} must be numbers") from None
    if not -1.0 <= k <= 1.0:
        raise UserError(f"trust gate: min kappa must be between -1 and 1 (got {k:g})")
    if n < 1:
        raise UserError(f"trust gate: min co-scored outputs must be at least 1 (got {n})")
    return Gate(k, n)


def stored_gate() -> Gate:
    """The trust gate last set on the Quality page (the store's settings), else the default: what the
    Decision page and `decide` use unless told otherwise."""
    from core.store.endpoints import get_setting

    try:
        return check_gate(get_setting(GATE_SETTINGS[0], str(GATE_KAPPA)),
                          get_setting(GATE_SETTINGS[1], str(GATE_MIN_OUTPUTS)))
    except UserError:   # a stored value out of range: the default gate, not an error on every page
        return Gate()


def save_gate(gate: Gate) -> None:
    from core.store.endpoints import set_setting

    gate = check_gate(gate.min_kappa, gate.min_outputs)
    if gate != stored_gate():
        set_setting(GATE_SETTINGS[0], repr(float(gate.min_kappa)))
        set_setting(GATE_SETTINGS[1], str(int(gate.min_outputs)))


def kappa_interval(items: list[tuple[str, float, float]], *, boot: int = BOOT, seed: int = 0,
                   level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the weighted kappa, resampling outputs (the first field groups pairs)."""
    if len(items) < 2:
        return None, None
    groups: dict[str, list[int]] = {}
    for i, (key, _, _) in enumerate(items):
        groups.setdefault(key, []).append(i)
    keys = list(groups)
    x = np.asarray([it[1] for it in items], float)
    y = np.asarray([it[2] for it in items], float)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(boot):
        pick = rng.integers(0, len(keys), len(keys))
        idx = [i for k in pick for i in groups[keys[k]]]
        v = quadratic_weighted_kappa(x[idx], y[idx])
        if v is not None:
            vals.append(v)
    if not vals:
        return None, None
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def _summary(items: list[tuple[str, float, float]], native: list[tuple[float, float]] | None = None,
             boot: int = BOOT) -> dict:
    xs = [it[1] for it in items]
    ys = [it[2] for it in items]
    lo, hi = kappa_interval(items, boot=boot)
    nat = native if native is not None else [(it[1], it[2]) for it in items]
    n = len(items)
    return {
        "kappa_weighted": quadratic_weighted_kappa(xs, ys), "kappa_ci_low": lo, "kappa_ci_high": hi,
        "spearman": spearman(xs, ys),
        "exact": (sum(1 for a, b in nat if a == b) / n) if n else None,
        "within_one": (sum(1 for a, b in nat if abs(a - b) <= 1) / n) if n else None,
        "n": n, "n_outputs": len({it[0] for it in items}),
    }


def confusion(pairs: list[tuple[float, float]], lo: int, hi: int) -> dict:
    """{"labels": [lo..hi], "matrix": rows = judge's score, columns = people's score, counts}."""
    labels = list(range(lo, hi + 1))
    m = [[0] * len(labels) for _ in labels]
    for j, h in pairs:
        if lo <= j <= hi and lo <= h <= hi:
            m[int(round(j)) - lo][int(round(h)) - lo] += 1
    return {"labels": labels, "matrix": m}


def krippendorff_alpha(units: dict, raters: list[str]) -> float | None:
    """Ordinal Krippendorff's alpha among people. units: {unit: {rater: value}}; None when undefined."""
    if len(raters) < 2 or not units:
        return None
    import krippendorff

    data = np.full((len(raters), len(units)), np.nan)
    for u, (_, by_rater) in enumerate(units.items()):
        for r, who in enumerate(raters):
            if who in by_rater:
                data[r, u] = by_rater[who]
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    if pairable.sum() == 0:
        return None
    data = data[:, pairable]
    domain = sorted({float(v) for v in data[~np.isnan(data)]})
    if len(domain) < 2:
        return None
    try:
        return float(krippendorff.alpha(reliability_data=data, value_domain=domain, level_of_measurement="ordinal"))
    except (ValueError, ZeroDivisionError):
        return None


def _length(text: str | None) -> int:
    return len((text or "").split())


def calibrate(rubric, judge_scores: dict[str, dict[str, float]], human_rows: list[dict],
              output_text: dict[str, str] | None = None, labels: dict[str, str] | None = None,
              boot: int = BOOT, gate: Gate | None = None) -> dict:
    """Agreement of one judge with people, people among themselves, and length bias.

    judge_scores: {request_id: {criterion: score}} (parsed judgements only); human_rows: rows with
    request_id, rater, criterion, score; output_text: {request_id: text} for length bias and the
    disagreement list; labels: {request_id: "prompt / model"} for that list.
    """
    gate = gate or Gate()
    output_text = output_text or {}
    labels = labels or {}
    per: dict[str, dict] = {}
    overall: list[tuple[str, float, float]] = []
    overall_native: list[tuple[float, float]] = []
    disagreements = []
    people_units: dict[str, dict[tuple, dict[str, float]]] = {c.name: {} for c in rubric.criteria}
    all_units: dict[tuple, dict[str, float]] = {}
    raters = sorted({r["rater"] for r in human_rows})
    for c in rubric.criteria:
        items, native = [], []
        for r in human_rows:
            if r["criterion"] != c.name:
                continue
            people_units[c.name].setdefault((r["request_id"], c.name), {})[r["rater"]] = r["score"]
            all_units.setdefault((r["request_id"], c.name), {})[r["rater"]] = c.normalise(r["score"])
            js = judge_scores.get(r["request_id"], {})
            if c.name not in js:
                continue
            j, h = float(js[c.name]), float(r["score"])
            items.append((r["request_id"], j, h))
            native.append((j, h))
            overall.append((r["request_id"], c.normalise(j), c.normalise(h)))
            overall_native.append((j, h))
            if j != h:
                disagreements.append({"output": labels.get(r["request_id"], r["request_id"]),
                                      "request_id": r["request_id"], "criterion": c.name, "rater": r["rater"],
                                      "judge": j, "human": h, "gap": abs(j - h),
                                      "excerpt": " ".join((output_text.get(r["request_id"]) or "").split())[:160]})
        s = _summary(items, native, boot)
        s["confusion"] = confusion(native, c.scale_min, c.scale_max)
        s["alpha_people"] = krippendorff_alpha(people_units[c.name], raters)
        per[c.name] = s
    s = _summary(overall, overall_native, boot)
    scales = {(c.scale_min, c.scale_max) for c in rubric.criteria}
    if len(scales) == 1:
        lo, hi = next(iter(scales))
        s["confusion"] = confusion(overall_native, lo, hi)
    else:
        s["confusion"] = None
    s["alpha_people"] = krippendorff_alpha(all_units, raters)
    per["overall"] = s
    disagreements.sort(key=lambda d: (-d["gap"], d["output"], d["criterion"], d["rater"]))
    trusted, reason = gate.check(s["kappa_weighted"], s["n_outputs"])
    return {
        "agreement": per, "raters": raters, "disagreements": disagreements[:TOP_DISAGREEMENTS],
        "length_bias": length_bias(rubric, judge_scores, human_rows, output_text),
        "trusted": trusted, "gate_reason": reason, "gate": {"min_kappa": gate.min_kappa, "min_outputs": gate.min_outputs},
    }


def _output_quality(rubric, scores: dict[str, float]) -> float | None:
    if not all(c.name in scores for c in rubric.criteria):
        return None
    w = sum(c.weight for c in rubric.criteria)
    return sum(c.weight * c.normalise(scores[c.name]) for c in rubric.criteria) / w


def length_bias(rubric, judge_scores: dict, human_rows: list[dict], output_text: dict[str, str]) -> dict:
    """Spearman of an output's quality (0..1) with its length in words: judge's, and people's for comparison."""
    j_pairs = [(_length(output_text.get(rid)), q) for rid, sc in judge_scores.items()
               if rid in output_text and (q := _output_quality(rubric, sc)) is not None]
    acc: dict[str, dict[str, list[float]]] = {}
    for r in human_rows:
        acc.setdefault(r["request_id"], {}).setdefault(r["criterion"], []).append(r["score"])
    h_pairs = []
    for rid, crit in acc.items():
        q = _output_quality(rubric, {c: sum(v) / len(v) for c, v in crit.items()})
        if q is not None and rid in output_text:
            h_pairs.append((_length(output_text[rid]), q))
    return {
        "judge": spearman([a for a, _ in j_pairs], [b for _, b in j_pairs]) if len(j_pairs) >= 2 else None,
        "judge_n": len(j_pairs),
        "human": spearman([a for a, _ in h_pairs], [b for _, b in h_pairs]) if len(h_pairs) >= 2 else None,
        "human_n": len(h_pairs),
    }


def position_bias(pairwise_rows: list[dict]) -> dict:
    """Share of pairs (both orders answered) whose verdict flips when the order is swapped."""
    both = [r for r in pairwise_rows if "failed" not in (r.get("verdict_ab"), r.get("verdict_ba"))]
    flipped = sum(1 for r in both if r["verdict_ab"] != r["verdict_ba"])
    return {"pairs": len(both), "flipped": flipped, "share": (flipped / len(both)) if both else None}


# ------------------------------------------------------------------ from the store

def judge_identity(jr: dict) -> str:
    """The judge a judge run belongs to: model + template version + rubric version."""
    v = jr.get("rubric_version")
    return f"{jr['judge_model']} · {jr['template_version']} · {jr['rubric']} v{v if v is not None else '?'}"


def judge_run_health(jr: dict, judgements: list[dict]) -> dict:
    """{"state", "parsed", "total", "constrained", "cause", "interrupted", "note"} with the cause in one line.

    state: running | ok (every judgement parsed, run completed) | partial (some failed) | failed (none
    parsed) | empty (none stored) | interrupted (stopped early; what was judged all parsed)."""
    total = len(judgements)
    parsed = sum(1 for j in judgements if j["status"] == "ok")
    constrained = sum(1 for j in judgements if j.get("constrained"))
    errors = [j["error"] for j in judgements if j["status"] != "ok" and j.get("error")]
    cause = None
    if errors:
        common = max(set(errors), key=errors.count)
        cause = " ".join(str(common).split())[:240]
    status = jr.get("status")
    note = " ".join(str(jr.get("note") or "").split())[:240] or None
    interrupted = status == "interrupted"
    if status == "running":
        state = "running"
    elif total == 0:
        state = "empty"
        cause = cause or (f"interrupted before any judgement: {note}" if interrupted and note
                          else f"no judgement stored (run {status})")
    elif parsed == 0:
        state = "failed"
    elif parsed < total:
        state = "partial"
    elif interrupted:
        state = "interrupted"
    else:
        state = "ok"
    return {"state": state, "parsed": parsed, "total": total, "constrained": constrained, "cause": cause,
            "interrupted": interrupted, "note": note}


def judge_calibration(run_id: str, judge_run_id: str, *, gate: Gate | None = None, boot: int = BOOT) -> dict:
    """Calibration of one (pointwise) judge run against the people who scored the same run and rubric."""
    from core.quality.outputs import run_labels
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    runs = [r for r in store.judge_runs(run_id) if r["judge_run_id"] == judge_run_id]
    if not runs:
        from core.errors import UserError
        raise UserError(f"unknown judge run {judge_run_id} for run {run_id}")
    jr = runs[0]
    rubric = get_rubric(jr["rubric"])
    js = store.judgements(judge_run_id)
    scores = {j["request_id"]: dict(j["scores"]) for j in js if j["status"] == "ok" and j["scores"]}
    from core.quality.outputs import run_outputs
    text = {o["request_id"]: o.get("output_text") or "" for o in run_outputs(run_id)}
    names = run_labels(run_id)
    labels = {j["request_id"]: f"{j['prompt_id']} / {names.get((j['model'], j['backend']), j['model'])}" for j in js}
    humans = store.human_scores(run_id, jr["rubric"])
    doc = calibrate(rubric, scores, humans, text, labels, boot=boot, gate=gate)
    doc["judge"] = judge_identity(jr)
    doc["judge_run_id"] = judge_run_id
    doc["health"] = judge_run_health(jr, js)
    from core.catalog.families import same_family_warnings
    doc["self_preference"] = same_family_warnings(jr["judge_model"], sorted({j["model"] for j in js}))
    pw = [r for r in store.judge_runs(run_id, mode="pairwise") if r["judge_model"] == jr["judge_model"]]
    doc["position_bias"] = position_bias(store.pairwise_verdicts(pw[0]["judge_run_id"])) if pw else None
    return doc
