"""Paired quality verdicts, and where scoring effort settles the decision fastest.

Paired: two candidates are compared on the prompts both have a quality for (0..1, as in
core.quality.scores): d_i = q_A(prompt i) - q_B(prompt i). The verdict is the mean of d with a
percentile bootstrap 95% interval over prompts (core.stats.bootstrap_ci, seed 0): when the interval
excludes 0, "A is better on quality than B: +0.31 (0.18 to 0.44) over 12 prompts"; otherwise "too close to
call on quality". With fewer than 2 common prompts there is no interval and no verdict.

Effort: the prompts a person should score next are those where the decision is least settled: where
the candidates differ most by the automatic rater (the spread of its per-prompt quality across
candidates), plus where raters disagree (the mean absolute gap between two raters' quality on the
prompt's outputs). The order depends on the raters only, so it holds still while a person scores.

How many scored prompts detect a difference: a paired test at 5% (two-sided) with 80% power needs
n = ((z_0.975 + z_0.8) * sd / delta)^2 prompts, sd the spread of the paired differences seen so far.
"""
from __future__ import annotations

import math
import statistics

from core.stats import bootstrap_ci

Z_ALPHA, Z_POWER = 1.959964, 0.841621   # 5% two-sided, 80% power
DEFAULT_DELTA = 0.1                     # a tenth of the 0..1 quality scale


def paired_difference(a: dict[str, float], b: dict[str, float]) -> dict:
    """{"mean", "ci_low", "ci_high", "n", "sd", "prompts"} of q_A - q_B over the common prompts."""
    common = sorted(set(a) & set(b))
    diffs = [a[p] - b[p] for p in common]
    if not diffs:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "sd": None, "prompts": []}
    ci = bootstrap_ci(diffs)
    return {"mean": sum(diffs) / len(diffs), "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
            "n": len(diffs), "sd": statistics.stdev(diffs) if len(diffs) >= 2 else None, "prompts": common}


def verdict(model_a: str, model_b: str, diff: dict, unit: str = "prompts") -> dict:
    """The paired verdict of A against B: {"model_a", "model_b", "verdict": "a_better"|"b_better"|"too_close"|
    "no_data", "sentence", ...diff}. A is named first when better."""
    out = {"model_a": model_a, "model_b": model_b, **{k: v for k, v in diff.items() if k != "prompts"}}
    n = diff["n"]
    if diff["ci_low"] is None:
        out["verdict"] = "no_data"
        out["sentence"] = (f"{model_a} vs {model_b}: no paired quality verdict "
                           f"({n} prompt{'s' if n != 1 else ''} scored for both; at least 2 needed)")
        return out
    m, lo, hi = diff["mean"], diff["ci_low"], diff["ci_high"]
    if lo > 0 or hi < 0:
        better, worse = (model_a, model_b) if m > 0 else (model_b, model_a)
        s = 1 if m > 0 else -1
        out["verdict"] = "a_better" if m > 0 else "b_better"
        out["sentence"] = (f"{better} is better on quality than {worse}: {s * m:+.2f} "
                           f"({min(s * lo, s * hi):.2f} to {max(s * lo, s * hi):.2f}) over {n} {unit}")
    else:
        out["verdict"] = "too_close"
        out["sentence"] = (f"{model_a} and {model_b}: too close to call on quality ({m:+.2f}, "
                           f"{lo:.2f} to {hi:.2f} over {n} {unit})")
    need = prompts_needed(diff.get("sd"), DEFAULT_DELTA)
    out["prompts_needed"] = need
    return out


def prompts_needed(sd: float | None, delta: float = DEFAULT_DELTA) -> int | None:
    """Scored prompts needed to detect a mean paired difference of `delta` at spread `sd` (5%, 80% power)."""
    if sd is None or delta <= 0:
        return None
    if sd == 0:
        return 2
    return max(2, math.ceil(((Z_ALPHA + Z_POWER) * sd / delta) ** 2))


def paired_verdicts(doc: dict) -> list[dict]:
    """From a quality_report document: the best candidate (highest mean quality) against each other one."""
    models = [m for m in doc.get("models", []) if m.get("per_prompt")]
    if len(models) < 2:
        return []
    models.sort(key=lambda m: (-(m["quality"]["mean"] or 0.0), m["model"]))
    best = models[0]
    return [verdict(best["model"], other["model"], paired_difference(best["per_prompt"], other["per_prompt"]))
            for other in models[1:]]


def run_paired(run_id: str, *, rubric: str | None = None, prefer: str | None = None, gate=None) -> list[dict]:
    from core.quality.scores import quality_report

    return paired_verdicts(quality_report(run_id, rubric=rubric, prefer=prefer, gate=gate))


# ------------------------------------------------------------------ where to score next

def _per_prompt_quality(rubric, scores: dict[str, dict[str, float]], outputs: list[dict]) -> dict[str, dict[str, float]]:
    """{prompt_id: {model: quality 0..1}} of one rater."""
    from core.quality.calibration import _output_quality

    out: dict[str, dict[str, float]] = {}
    for o in outputs:
        s = scores.get(o["request_id"])
        q = _output_quality(rubric, s) if s else None
        if q is not None:
            out.setdefault(o["prompt_id"], {})[o["model"]] = q
    return out


def scoring_priority(run_id: str, rubric_name: str, rater: str | None = None) -> list[dict]:
    """Prompts in the order to score them: [{"prompt_id", "spread", "disagreement", "priority", "scored"}],
    most decisive first (ties: the run's order); "scored" when the rater (or, without one, any person) scored
    all its outputs."""
    from core.quality.outputs import run_outputs
    from core.quality.rubrics import get_rubric
    from core.quality.scores import raters
    from core.store import quality as store

    rubric = get_rubric(rubric_name)
    outputs = run_outputs(run_id)
    human_rows = store.human_scores(run_id, rubric.name)
    rs = raters(run_id, rubric, human_rows, boot=0)
    per_rater = [_per_prompt_quality(rubric, r["scores"], outputs) for r in rs[:2]]
    done = {}
    for r in human_rows:
        if rater is None or r["rater"] == rater:
            done.setdefault(r["request_id"], set()).add(r["criterion"])
    by_prompt: dict[str, list[dict]] = {}
    for o in outputs:
        by_prompt.setdefault(o["prompt_id"], []).append(o)
    rows = []
    for pid, outs in by_prompt.items():
        main = per_rater[0].get(pid, {}) if per_rater else {}
        spread = (max(main.values()) - min(main.values())) if len(main) >= 2 else 0.0
        gap = 0.0
        if len(per_rater) == 2:
            other = per_rater[1].get(pid, {})
            both = [m for m in main if m in other]
            gap = sum(abs(main[m] - other[m]) for m in both) / len(both) if both else 0.0
        scored = all(set(rubric.criterion_names) <= done.get(o["request_id"], set()) for o in outs)
        rows.append({"prompt_id": pid, "position": outs[0].get("position", 0), "spread": round(spread, 4),
                     "disagreement": round(gap, 4), "priority": round(spread + gap, 4), "scored": scored})
    # not by "scored": the order must not change under a rater's hands (Save and next, First unscored)
    rows.sort(key=lambda r: (-r["priority"], r["position"], r["prompt_id"]))
    return rows
