"""Quality per model, and agreement between the judge and people.

Scale: every score is mapped onto 0..1 with its criterion's scale ((score - min) / (max - min), so
on a 1..5 scale 1 -> 0, 3 -> 0.5, 5 -> 1). An output's quality is the weighted mean of its
criteria on that scale (weights from the rubric). A model's quality is the mean over its scored
outputs, with a bootstrap 95% interval over those outputs (core.stats.bootstrap_ci); n is the
number of outputs. Per criterion, the same on that criterion alone.

Sources: human scores are the mean over raters; judge scores come from the latest pointwise judge
run of the run (and rubric). With prefer="human" (the default, setting "quality.prefer") an output
scored by people uses the people's scores and the judge fills in the others; prefer="judge" is the
reverse. "source" says what the number rests on: "human", "judge" or "human+judge".

The trust gate (core.quality.calibration.Gate): the judge's scores count on their own only when the
judge agrees with people (kappa >= 0.6 on >= 20 co-scored outputs by default). Below the gate, a model
that people scored gets its quality from the people's scores alone; one that only the judge scored
keeps the judge's number marked "unverified" with the reason ("verified": False, "reason").
"""
from __future__ import annotations

from core.errors import UserError
from core.stats import bootstrap_ci

PREFER_SETTING = "quality.prefer"
PREFER_CHOICES = ("human", "judge")


def get_prefer() -> str:
    from core.store.endpoints import get_setting

    value = get_setting(PREFER_SETTING, "human")
    return value if value in PREFER_CHOICES else "human"


def set_prefer(value: str) -> None:
    from core.store.endpoints import set_setting

    if value not in PREFER_CHOICES:
        raise UserError(f"prefer must be one of {', '.join(PREFER_CHOICES)}")
    set_setting(PREFER_SETTING, value)


def _rubric_for(run_id: str, rubric: str | None):
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    if rubric:
        return get_rubric(rubric)
    used = store.rubrics_used(run_id)
    return get_rubric(used[0]) if used else None


def rater_name(jr: dict) -> str:
    """A rater's name as tables and JSON show it: the scorers' version, or "judge MODEL (template)"."""
    from core.quality.scorers import is_scorer_run

    if is_scorer_run(jr):
        return jr["template_version"]
    return f"judge {jr['judge_model']} ({jr['template_version']})"


def _run_scores(judge_run_id: str) -> dict[str, dict[str, float]]:
    from core.store import quality as store

    return {j["request_id"]: dict(j["scores"]) for j in store.judgements(judge_run_id) if j["status"] == "ok" and j["scores"]}


def raters(run_id: str, rubric, human_rows: list[dict], gate=None, boot: int = 200) -> list[dict]:
    """Every rater of the run on this rubric (each pointwise judge run, LLM or automatic scorers), calibrated
    against people the same way (core.quality.calibration.calibrate) and checked by the same gate. Best first:
    verified before unverified, then higher kappa, then the automatic scorers, then the newest.
    Each: {"judge_run_id", "name", "kind": "scorers"|"judge", "scores", "trusted", "reason", "kappa",
    "kappa_ci_low", "kappa_ci_high", "spearman", "n_outputs", "n_scored"}."""
    from core.quality.calibration import Gate, calibrate
    from core.quality.scorers import is_scorer_run
    from core.store import quality as store

    out = []
    for age, jr in enumerate(store.judge_runs(run_id, mode="pointwise", rubric=rubric.name)):
        scores = _run_scores(jr["judge_run_id"])
        if not scores:
            continue
        cal = calibrate(rubric, scores, human_rows, boot=boot, gate=gate or Gate())
        ov = cal["agreement"]["overall"]
        out.append({"judge_run_id": jr["judge_run_id"], "name": rater_name(jr),
                    "kind": "scorers" if is_scorer_run(jr) else "judge", "scores": scores,
                    "trusted": cal["trusted"], "reason": cal["gate_reason"], "kappa": ov["kappa_weighted"],
                    "kappa_ci_low": ov["kappa_ci_low"], "kappa_ci_high": ov["kappa_ci_high"],
                    "spearman": ov["spearman"], "n_outputs": ov["n_outputs"], "n_scored": len(scores), "_age": age})
    out.sort(key=lambda r: (not r["trusted"], -(r["kappa"] if r["trusted"] and r["kappa"] is not None else 0.0),
                            r["kind"] != "scorers", r["_age"]))
    for r in out:
        r.pop("_age")
    return out


def best_rater_id(run_id: str, rubric_name: str, gate=None) -> str | None:
    """The judge run quality uses when none is named (the first of `raters`), or None."""
    from core.quality.rubrics import get_rubric

    rub = get_rubric(rubric_name)
    rs = raters(run_id, rub, _human_scores(run_id, rub.name)[1], gate, boot=0)
    return rs[0]["judge_run_id"] if rs else None


def _judge_scores(run_id: str, rubric_name: str, judge_run_id: str | None = None) -> tuple[dict, dict | None]:
    """({request_id: {criterion: score}}, judge run row) of the chosen (default: latest) pointwise judge run."""
    from core.store import quality as store

    runs = store.judge_runs(run_id, mode="pointwise", rubric=rubric_name)
    if judge_run_id:
        runs = [r for r in runs if r["judge_run_id"] == judge_run_id]
    if not runs:
        return {}, None
    return _run_scores(runs[0]["judge_run_id"]), runs[0]


def _human_scores(run_id: str, rubric_name: str) -> tuple[dict, list[dict]]:
    """({request_id: {criterion: mean over raters}}, raw rows)."""
    from core.store import quality as store

    rows = store.human_scores(run_id, rubric_name)
    acc: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        acc.setdefault(r["request_id"], {}).setdefault(r["criterion"], []).append(r["score"])
    return {rid: {c: sum(v) / len(v) for c, v in crit.items()} for rid, crit in acc.items()}, rows


def _stat(values: list[float], source: str | None) -> dict:
    if not values:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "source": source}
    lo, hi = bootstrap_ci(values) or (None, None)    # fewer than 2 outputs: no interval (n/a)
    return {"mean": sum(values) / len(values), "ci_low": lo, "ci_high": hi, "n": len(values), "source": source}


def _source(kinds: set[str]) -> str | None:
    if not kinds:
        return None
    return "+".join(k for k in ("human", "judge") if k in kinds)


def _source_status(kinds: set[str], verified: bool, rater: dict | None) -> tuple[str | None, str]:
    """What a model's quality rests on, named: ("people" | the rater's name | "people + RATER", status
    "people" | "verified" | "unverified" | "unscored")."""
    if not kinds:
        return None, "unscored"
    if kinds == {"human"}:
        return "people", "people"
    name = rater["name"] if rater else "judge"
    return ("people + " + name if "human" in kinds else name), ("verified" if verified else "unverified")


def to_verify(rater: dict, gate) -> str:
    """What to score by hand so that the rater can pass the gate, in one sentence."""
    co = rater.get("n_outputs") or 0
    if co < gate.min_outputs:
        return (f"score {gate.min_outputs - co} more of its outputs by hand (Score by hand) to check "
                f"{rater['name']} against people (the gate: kappa >= {gate.min_kappa:g} on >= {gate.min_outputs} "
                "outputs scored by both)")
    return (f"{rater['name']} disagrees with people (kappa {rater['kappa']:.2f} on {co} outputs; the gate: "
            f">= {gate.min_kappa:g}): score the outputs by hand, or calibrate another rater")


def _people_summary(rubric, human_rows: list[dict]) -> dict:
    """People as raters: how many scored, how many outputs, and their agreement among themselves
    (ordinal Krippendorff's alpha; needs two raters on the same outputs)."""
    from core.quality.calibration import krippendorff_alpha

    units: dict[tuple, dict[str, float]] = {}
    for r in human_rows:
        c = next((c for c in rubric.criteria if c.name == r["criterion"]), None)
        if c is not None:
            units.setdefault((r["request_id"], c.name), {})[r["rater"]] = c.normalise(r["score"])
    who = sorted({r["rater"] for r in human_rows})
    return {"raters": who, "n_outputs": len({r["request_id"] for r in human_rows}),
            "alpha": krippendorff_alpha(units, who)}


def quality_report(run_id: str, *, prefer: str | None = None, rubric: str | None = None,
                   judge_run_id: str | None = None, gate=None) -> dict:
    """The `scores` document: {"run_id", "rubric", "prefer", "judge_run_id", "models": [...], "agreement": {...}}."""
    from core.quality.agreement import agreement
    from core.quality.outputs import run_outputs

    prefer = prefer or get_prefer()
    if prefer not in PREFER_CHOICES:
        raise UserError(f"prefer must be one of {', '.join(PREFER_CHOICES)}")
    outputs = run_outputs(run_id)
    rub = _rubric_for(run_id, rubric)
    doc = {"run_id": run_id, "rubric": rub.name if rub else None, "prefer": prefer, "judge_run_id": None,
           "models": [], "agreement": {}}
    if rub is None:
        return doc
    human, human_rows = _human_scores(run_id, rub.name)
    from core.quality.calibration import Gate
    gate = gate or Gate()
    all_raters = raters(run_id, rub, human_rows, gate)
    chosen_rater = (next((r for r in all_raters if r["judge_run_id"] == judge_run_id), None) if judge_run_id
                    else (all_raters[0] if all_raters else None))
    judge = chosen_rater["scores"] if chosen_rater else {}
    doc["judge_run_id"] = chosen_rater["judge_run_id"] if chosen_rater else None
    doc["rater"] = {k: v for k, v in chosen_rater.items() if k != "scores"} if chosen_rater else None
    doc["raters"] = [{k: v for k, v in r.items() if k != "scores"} for r in all_raters]
    doc["people"] = _people_summary(rub, human_rows)
    weights = {c.name: c.weight for c in rub.criteria}
    trusted, reason = True, None
    if judge:
        trusted = chosen_rater["trusted"]
        who = "judge" if chosen_rater["kind"] == "judge" else chosen_rater["name"]
        reason = f"{who} not calibrated: {chosen_rater['reason']}"
        doc["gate"] = {"trusted": trusted, "reason": chosen_rater["reason"], "min_kappa": gate.min_kappa,
                       "min_outputs": gate.min_outputs, "rater": chosen_rater["name"]}
    human_models = {o["model"] for o in outputs if o["request_id"] in human}

    per_model: dict[str, dict] = {}
    for o in outputs:
        m = per_model.setdefault(o["model"], {"quality": [], "kinds": set(), "per_prompt": {},
                                              "criteria": {c: ([], set()) for c in rub.criterion_names}})
        order = [("human", human), ("judge", judge)] if prefer == "human" else [("judge", judge), ("human", human)]
        if not trusted and o["model"] in human_models:
            order = [("human", human)]   # below the gate: people's scores where they exist, alone
        chosen = next(((kind, src[o["request_id"]]) for kind, src in order if o["request_id"] in src), None)
        if chosen is None:
            continue
        kind, scores = chosen
        norm = {c.name: c.normalise(scores[c.name]) for c in rub.criteria if c.name in scores}
        if not norm:
            continue
        for c, v in norm.items():
            m["criteria"][c][0].append(v)
            m["criteria"][c][1].add(kind)
        if len(norm) == len(rub.criteria):  # an output's quality needs every criterion
            m["quality"].append(sum(weights[c] * v for c, v in norm.items()) / sum(weights[c] for c in norm))
            m["per_prompt"][o["prompt_id"]] = m["quality"][-1]
            m["kinds"].add(kind)
    for model in sorted(per_model):
        m = per_model[model]
        q = _stat(m["quality"], _source(m["kinds"]))
        q["verified"] = trusted or "judge" not in m["kinds"]
        q["reason"] = None if q["verified"] else reason
        source, status = _source_status(m["kinds"], q["verified"], chosen_rater)
        q["status"] = status
        if "judge" in m["kinds"]:
            q["rater"] = chosen_rater["name"]
            if not q["verified"]:
                q["to_verify"] = to_verify(chosen_rater, gate)
        doc["models"].append({
            "model": model,
            "source": source,
            "status": status,
            "quality": q,
            "per_prompt": m["per_prompt"],
            "criteria": {c: _stat(vals, _source(kinds)) for c, (vals, kinds) in m["criteria"].items()},
        })

    # Agreement: each rater's score against the judge's, for outputs both scored.
    pairs: dict[str, list[tuple[float, float]]] = {c: [] for c in rub.criterion_names}
    overall: list[tuple[float, float]] = []
    for r in human_rows:
        js = judge.get(r["request_id"], {})
        if r["criterion"] in js and r["criterion"] in pairs:
            crit = rub.criterion(r["criterion"])
            pairs[r["criterion"]].append((js[r["criterion"]], r["score"]))
            overall.append((crit.normalise(js[r["criterion"]]), crit.normalise(r["score"])))
    doc["agreement"] = agreement(pairs, overall)
    return doc


def model_quality(run_id: str, *, prefer: str = "human", rubric: str | None = None, gate=None) -> dict[str, dict]:
    """{model: {"mean", "ci_low", "ci_high", "n", "source", "verified", "reason"}} on the rubric's 0..1 scale.

    model is the candidate label (the model id; "MODEL (BACKEND)" when one model ran on two engines).
    Models with no score are left out. The rubric is the one most recently used on the run unless named.
    """
    doc = quality_report(run_id, prefer=prefer, rubric=rubric, gate=gate)
    return {m["model"]: dict(m["quality"]) for m in doc["models"] if m["quality"]["n"] > 0}
