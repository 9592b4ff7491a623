"""Automatic scorers: each rubric criterion scored without a model call, stored as a rater like a judge run.

Each scorer gives a value in 0..1, mapped onto the criterion's scale (lo + value * (hi - lo)); a
criterion is scored by the scorer of its name:

- coverage: each of the prompt's expected aspects is matched to the output's sentences by embedding
  similarity (all-MiniLM-L6-v2, cosine of unit vectors): an aspect's credit is
  clip((best cosine - SIM_LOW) / (SIM_HIGH - SIM_LOW), 0, 1); coverage is the mean credit, averaged
  with the share of `must_include` texts present (the rubric's `contains` checks) when the prompt has any.
- faithfulness: the names, dates and numbers in the output (capitalised words, digits) that the
  transcript (the prompt) does not contain lower it: value = supported share - MUST_NOT_PENALTY for each
  `must_not_include` text present (the `not_contains` checks), floored at 0.
- concision: words over the prompt's `max_words` (the smallest max_words check): 1 within the limit,
  then falling linearly to 0 at twice the limit. Without a limit, twice the reference answer's length
  is the limit; without either, 1.
- format: the share of the rubric-wide structural checks (regex, list_items, min_words, valid_json:
  "has a Decisions section", "uses a list") the output passes; without any, 1.

A run of the scorers is stored as a pointwise judge run of judge model "auto-scorers", backend
"automatic", template version SCORER_VERSION (bumped whenever a rule or constant here changes), so it is
versioned, calibrated against people and gated exactly like an LLM judge. The details of every
criterion are kept in the judgement's rationale.
"""
from __future__ import annotations

import json
import re
import time

import numpy as np

SCORER_MODEL = "auto-scorers"
SCORER_BACKEND = "automatic"
SCORER_VERSION = "auto-scorers/1"
SIM_LOW, SIM_HIGH = 0.35, 0.75
MUST_NOT_PENALTY = 0.5
STRUCTURAL = ("regex", "list_items", "min_words", "valid_json")
SCORERS = ("coverage", "faithfulness", "concision", "format")

_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n+")
_MARKER = re.compile(r"^\s*(?:[#>*+\-\u2022]+|\d{1,3}[.)])\s*")
_ENTITY = re.compile(r"\b(?:\d[\d.,:/]*\d|\d)(?:\s?%)?|\b[A-Z][a-zA-Z'\u2019-]+")
# words that structure notes rather than state facts; capitalised at a line start, not in a transcript
_STRUCTURE_WORDS = {"decision", "decisions", "action", "actions", "item", "items", "notes", "none", "owner", "due",
                    "summary", "meeting", "next", "steps", "tbd", "n/a", "no", "yes", "the", "a", "an", "key",
                    "points", "point", "date", "task", "tasks", "follow-up", "follow-ups", "agreed", "discussed"}


def sentences(text: str) -> list[str]:
    """The output's sentences and list lines, list markers and markdown stripped; headings kept."""
    out = []
    for part in _SENT_SPLIT.split(text or ""):
        s = _MARKER.sub("", part).strip().strip("*_#").strip()
        if len(s.split()) >= 2:
            out.append(s)
    return out


def _to_scale(crit, value: float) -> float:
    return round(crit.scale_min + max(0.0, min(1.0, value)) * (crit.scale_max - crit.scale_min), 4)


def coverage(output: str, aspects: list[str], includes: list[dict], embedder) -> tuple[float | None, dict]:
    from core.quality.checks import run_check

    parts, detail = [], {}
    if aspects:
        sents = sentences(output)
        if sents:
            a = embedder.embed(aspects)
            s = embedder.embed(sents)
            best = (a @ s.T).max(axis=1)
        else:
            best = np.zeros(len(aspects))
        credit = np.clip((best - SIM_LOW) / (SIM_HIGH - SIM_LOW), 0.0, 1.0)
        parts.append(float(credit.mean()))
        detail["aspects"] = [{"aspect": asp[:80], "similarity": round(float(b), 3)} for asp, b in zip(aspects, best)]
    if includes:
        found = [spec["value"] for spec in includes if run_check(spec, output)[0]]
        parts.append(len(found) / len(includes))
        detail["must_include"] = f"{len(found)} of {len(includes)}"
    return (sum(parts) / len(parts) if parts else None), detail


def _word_set(text: str) -> set[str]:
    return {w.casefold() for w in re.findall(r"[^\W_]+(?:[.,:/'\u2019-][^\W_]+)*", text or "")}


def faithfulness(output: str, transcript: str, excludes: list[dict]) -> tuple[float, dict]:
    from core.quality.checks import run_check

    source = _word_set(transcript)
    flat = (transcript or "").casefold()
    entities = [m.group(0).strip() for m in _ENTITY.finditer(output or "")]
    entities = [e for e in entities if e.casefold() not in _STRUCTURE_WORDS]
    unsupported = sorted({e for e in entities if e.casefold() not in source and e.casefold() not in flat})
    share = 1.0 if not entities else sum(1 for e in entities if e not in unsupported) / len(entities)
    hits = [spec["value"] for spec in excludes if not run_check(spec, output)[0]]
    value = max(0.0, share - MUST_NOT_PENALTY * len(hits))
    return value, {"entities": len(entities), "unsupported": unsupported[:12], "must_not_include_found": hits}


def concision(output: str, limits: list[int], reference: str | None) -> tuple[float, dict]:
    from core.quality.checks import word_count

    n = word_count(output)
    limit = min(limits) if limits else (2 * word_count(reference) if reference else None)
    if not limit:
        return 1.0, {"words": n, "limit": None}
    return max(0.0, min(1.0, 1.0 - (n - limit) / limit)), {"words": n, "limit": limit}


def form(output: str, structural: list[dict]) -> tuple[float, dict]:
    from core.quality.checks import describe, run_check

    if not structural:
        return 1.0, {"checks": 0}
    passed = [describe(s) for s in structural if run_check(s, output)[0]]
    return len(passed) / len(structural), {"passed": passed, "of": len(structural)}


def score_output(rubric, out: dict, embedder) -> tuple[dict[str, float], dict]:
    """({criterion: score on its scale}, details) for one output; criteria no scorer knows are left out."""
    exp = rubric.prompts.get(out["prompt_id"])
    checks = [spec for _k, spec in rubric.checks_for(out["prompt_id"])]
    prompt_checks = exp.checks if exp else []
    text = out.get("output_text") or ""
    values: dict[str, tuple[float | None, dict]] = {}
    names = set(rubric.criterion_names)
    if "coverage" in names:
        values["coverage"] = coverage(text, exp.expected_aspects if exp else [],
                                      [c for c in prompt_checks if c["kind"] == "contains"], embedder)
    if "faithfulness" in names:
        values["faithfulness"] = faithfulness(text, out.get("prompt_text") or "",
                                              [c for c in checks if c["kind"] == "not_contains"])
    if "concision" in names:
        values["concision"] = concision(text, [c["value"] for c in checks if c["kind"] == "max_words"],
                                        exp.reference_answer if exp else None)
    if "format" in names:
        values["format"] = form(text, [c for c in rubric.checks if c["kind"] in STRUCTURAL])
    scores = {c: _to_scale(rubric.criterion(c), v) for c, (v, _d) in values.items() if v is not None}
    return scores, {c: d for c, (_v, d) in values.items()}


def scorer_description() -> str:
    return (__doc__ or "").strip() + f"\n\nconstants: SIM_LOW={SIM_LOW} SIM_HIGH={SIM_HIGH} " \
                                     f"MUST_NOT_PENALTY={MUST_NOT_PENALTY}"


def default_rubric_for_run(run_id: str) -> str:
    """The rubric for a run with none named: the one used on it last, else the one for its prompt set."""
    from core.errors import UserError
    from core.quality.rubrics import ensure_default_rubrics, list_rubrics
    from core.quality.views import default_rubric
    from core.store import quality as store
    from core.store.bench import get_run

    used = store.rubrics_used(run_id)
    if used:
        return used[0]
    ensure_default_rubrics()
    run = get_run(run_id)
    if run is None:
        raise UserError(f"unknown run {run_id!r}")
    made_for, stored = default_rubric(run, list_rubrics())
    if stored is None:
        raise UserError(f"no rubric for run {run_id}'s prompt set ({made_for or 'unknown'}): name one with --rubric")
    return stored


def run_scorers(run_id: str, rubric_name: str, *, progress=None) -> dict:
    """Score every output of a run with the automatic scorers; store it as a judge run and return
    {"judge_run_id", "rubric", "scorer", "scores": [{request_id, model, prompt_id, scores, details}],
     "seconds"}."""
    from core.quality.embedding import load_embedder
    from core.quality.outputs import run_outputs
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    start = time.perf_counter()
    rubric = get_rubric(rubric_name)
    outputs = run_outputs(run_id)
    embedder = load_embedder()
    store.ensure_template(SCORER_VERSION, "automatic", scorer_description())
    if "coverage" in rubric.criterion_names:   # every text in one pass, sorted by length: batches pad little
        embedder.embed([a for o in outputs for a in (rubric.prompts[o["prompt_id"]].expected_aspects
                                                     if o["prompt_id"] in rubric.prompts else [])]
                       + [x for o in outputs for x in sentences(o["output_text"])])
    rows = []
    for i, out in enumerate(outputs):
        scores, details = score_output(rubric, out, embedder)
        rows.append({"request_id": out["request_id"], "model": out["model"], "prompt_id": out["prompt_id"],
                     "scores": scores, "details": details})
        if progress:
            progress(i + 1, len(outputs), f"{out['prompt_id']} / {out['model']}")
    from core.catalog.embedder import recipe

    from core.store.scorer_runs import save_scorer_run

    judge_run_id = save_scorer_run(
        run_id=run_id, rubric=rubric.name, rubric_version=rubric.version, judge_model=SCORER_MODEL,
        judge_backend=SCORER_BACKEND, template_version=SCORER_VERSION,
        settings={"embedder": recipe()["id"], "sim_low": SIM_LOW, "sim_high": SIM_HIGH,
                  "must_not_penalty": MUST_NOT_PENALTY},
        rows=[{"request_id": r["request_id"], "scores": r["scores"],
               "rationale": json.dumps(r["details"], ensure_ascii=False, default=str)} for r in rows])
    return {"judge_run_id": judge_run_id, "run_id": run_id, "rubric": rubric.name, "rubric_version": rubric.version,
            "scorer": SCORER_VERSION, "scores": rows, "seconds": round(time.perf_counter() - start, 3)}


def is_scorer_run(jr: dict) -> bool:
    return jr.get("judge_backend") == SCORER_BACKEND


def check_run(run_id: str, rubric_name: str | None = None, *, progress=None) -> dict:
    """`check` and the Quality page's button: the rubric's checks and the automatic scorers on every output
    of a run (rubric: the one named, else default_rubric_for_run). The run_scorers document plus "checks"
    (one row per output and check) and "check_pass_rate" per model."""
    from core.quality.checks import run_checks

    rubric_name = rubric_name or default_rubric_for_run(run_id)
    checks = run_checks(run_id, rubric_name)
    doc = run_scorers(run_id, rubric_name, progress=progress)
    passed: dict[str, list[bool]] = {}
    for c in checks:
        passed.setdefault(c["model"], []).append(bool(c["passed"]))
    doc["checks"] = [{k: c[k] for k in ("request_id", "model", "prompt_id", "check_key", "label", "passed", "detail")}
                     for c in checks]
    doc["check_pass_rate"] = {m: sum(v) / len(v) for m, v in passed.items() if v}
    return doc
