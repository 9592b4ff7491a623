"""Tables for the Quality and Score-by-hand pages (plain rows; the pages only draw them)."""
from __future__ import annotations

from core.errors import one_line
from core.quality.outputs import run_labels


def run_choices() -> list[dict]:
    """Every run, newest first; a run whose process is gone reads "interrupted" (the one list of runs)."""
    from core.store import bench

    return bench.list_runs()


def judge_runs(run_id: str) -> list[dict]:
    from core.store import quality as store

    return store.judge_runs(run_id)


def judgement_rows(judge_run_id: str, run_id: str) -> list[dict]:
    """One row per judged output: prompt, model, status, each criterion's score, rationale, raw, error."""
    from core.store import quality as store

    labels = run_labels(run_id)
    rows = []
    for j in store.judgements(judge_run_id):
        row = {"prompt_id": j["prompt_id"], "model": labels.get((j["model"], j["backend"]), j["model"]),
               "status": j["status"], "attempts": j["attempts"]}
        row.update({f"{c}": v for c, v in sorted(j["scores"].items())})
        row.update({"output": cut_mark(j.get("finish_reason"), j.get("completion_tokens")),
                    "constrained": j.get("constrained"), "rationale": j["rationale"] or "", "error": j["error"] or "",
                    "raw": j["raw"] or "", "template_version": j["template_version"],
                    "rubric_version": j.get("rubric_version")})
        rows.append(row)
    return rows


def pairwise_rows(judge_run_id: str) -> list[dict]:
    from core.store import quality as store

    return [{"prompt_id": r["prompt_id"], "model_a": r["model_a"], "model_b": r["model_b"],
             "a_first": r["verdict_ab"], "b_first": r["verdict_ba"], "verdict": r["verdict"],
             "rationale_a_first": r["rationale_ab"] or "", "rationale_b_first": r["rationale_ba"] or "",
             "error": r["error"] or ""} for r in store.pairwise_verdicts(judge_run_id)]


def pairwise_summary(rows: list[dict]) -> dict:
    """Wins per model and the share of inconsistent pairs (position bias)."""
    wins: dict[str, float] = {}
    decided = 0
    inconsistent = sum(1 for r in rows if r["verdict"] == "inconsistent")
    for r in rows:
        for m in (r["model_a"], r["model_b"]):
            wins.setdefault(m, 0.0)
        if r["verdict"] == "a":
            wins[r["model_a"]] += 1
        elif r["verdict"] == "b":
            wins[r["model_b"]] += 1
        elif r["verdict"] == "tie":
            wins[r["model_a"]] += 0.5
            wins[r["model_b"]] += 0.5
        if r["verdict"] in ("a", "b", "tie"):
            decided += 1
    return {"wins": wins, "pairs": len(rows), "decided": decided, "inconsistent": inconsistent}


def quality_rows(report: dict) -> list[dict]:
    rows = []
    for m in report["models"]:
        q = m["quality"]
        row = {"model": m["model"], "quality": q["mean"], "ci_low": q["ci_low"], "ci_high": q["ci_high"],
               "n": q["n"], "source": m.get("source") or "no scores yet",
               "status": (m.get("status") or "unscored") + ("" if q.get("verified", True)
                                                           else ": " + (q.get("reason") or ""))}
        for c, s in m["criteria"].items():
            row[c] = s["mean"]
        rows.append(row)
    return rows


def agreement_rows(report: dict) -> list[dict]:
    return [{"criterion": name, "spearman": a["spearman"], "kappa_weighted": a["kappa_weighted"], "n": a["n"]}
            for name, a in report["agreement"].items()]


def check_rows(run_id: str, rubric: str) -> tuple[list[dict], list[dict]]:
    """(summary per model: passed/total, detail per output and check)."""
    from core.quality.checks import describe
    from core.store import quality as store

    labels = run_labels(run_id)
    detail, summary = [], {}
    for r in store.check_results(run_id, rubric):
        model = labels.get((r["model"], r["backend"]), r["model"])
        detail.append({"prompt_id": r["prompt_id"], "model": model, "check": describe(r["spec"]),
                       "passed": bool(r["passed"]), "detail": r["detail"] or ""})
        s = summary.setdefault(model, {"model": model, "passed": 0, "total": 0})
        s["total"] += 1
        s["passed"] += int(bool(r["passed"]))
    for s in summary.values():
        s["pass_rate"] = s["passed"] / s["total"] if s["total"] else None
    return list(summary.values()), detail


def reveal_rows(session) -> list[dict]:
    """After blind scoring: which model each slot was, with this rater's scores."""
    rows = []
    for p in session.prompts:
        for c in p.candidates:
            row = {"prompt_id": p.prompt_id, "candidate": c.slot, "model": c.model}
            row.update({k: c.scores.get(k) for k in session.criteria})
            row["comment"] = c.comment
            rows.append(row)
    return rows


def rubric_criteria_rows(rubric) -> list[dict]:
    return [{"name": c.name, "description": c.description, "scale_min": c.scale_min, "scale_max": c.scale_max,
             "weight": c.weight} for c in rubric.criteria]


def rubric_from_edit(base: dict, name: str, description: str, criteria_rows: list[dict], rest_json: str) -> dict:
    """A rubric document from the page's editors (criteria table + the prompts/checks JSON); validated by import."""
    from core.config import limit
    from core.output import JsonTooDeep, parse_json_strict
    from core.quality.rubrics import RubricError

    try:
        rest = parse_json_strict(rest_json, limit("SLM_MAX_JSON_DEPTH")) if rest_json.strip() else {}
    except JsonTooDeep as exc:
        raise RubricError(f"prompts and checks: {exc} (SLM_MAX_JSON_DEPTH)") from None
    except ValueError as exc:
        raise RubricError(f"prompts and checks: not valid JSON ({exc})") from None
    if not isinstance(rest, dict):
        raise RubricError('prompts and checks: must be an object {"checks": [...], "prompts": {...}}')
    def plain(v):
        if hasattr(v, "item"):
            v = v.item()  # numpy scalars from the editor
        if isinstance(v, float) and v != v:
            return None   # NaN: an empty cell
        return v

    criteria = []
    for i, r in enumerate(criteria_rows):
        r = {k: plain(v) for k, v in r.items()}
        if not any(v not in (None, "") for v in r.values()):
            continue  # an empty row added in the editor
        lo, hi = r.get("scale_min"), r.get("scale_max")
        criteria.append({"name": r.get("name") or "", "description": r.get("description") or "",
                         "scale": [lo if lo is not None else 1, hi if hi is not None else 5],
                         "weight": r.get("weight") if r.get("weight") is not None else 1.0})
    doc = {"name": name, "description": description, "criteria": criteria,
           "checks": rest.get("checks", []), "prompts": rest.get("prompts", {})}
    if base.get("prompt_set"):
        doc["prompt_set"] = base["prompt_set"]
    extra = sorted(set(rest) - {"checks", "prompts"})
    if extra:
        raise RubricError(f"prompts and checks: unknown key {extra[0]!r}")
    return doc


# ------------------------------------------------------------------ honest defaults and marks: the page never guesses

def default_rubric(run: dict | None, names: list[str]) -> tuple[str | None, str | None]:
    """(the rubric made for the run's prompt set, i.e. data/rubrics/<prompt set name>.json, or None;
    its name if stored). The prompt set is stored as a path or a name: its stem is the rubric's name."""
    from pathlib import Path

    ps = (run or {}).get("prompt_set") or ""
    stem = Path(str(ps)).stem if ps else ""
    return (stem or None), (stem if stem in names else None)


def rubric_mismatch(run: dict | None, chosen: str | None, names: list[str]) -> str | None:
    """A one-line warning when the chosen rubric is not the one made for the run's prompt set."""
    made_for, stored = default_rubric(run, names)
    if stored and chosen and chosen != stored:
        return (f"Rubric {chosen} was not made for this run's prompt set ({made_for}): its criteria and expected "
                f"aspects may not fit these prompts. The matching rubric is {stored}.")
    return None


def judge_run_health(run: dict) -> dict:
    from core.quality.calibration import judge_run_health as health
    from core.store import quality as store

    return health(run, store.judgements(run["judge_run_id"]) if run["mode"] == "pointwise" else [])


def default_judge_run(pointwise_runs: list[dict], health: dict[str, dict] | None = None,
                      preferred: str | None = None) -> int:
    """Index of ``preferred`` (the rater quality uses by default: core.quality.scores.best_rater_id) when it
    is listed, else of the latest judge run (the list is newest first) with at least one parsed judgement
    (0 when none has). ``health``: judge_run_id -> judge_run_health, when the caller has it already."""
    ids = [jr["judge_run_id"] for jr in pointwise_runs]
    if preferred in ids:
        return ids.index(preferred)
    for i, jr in enumerate(pointwise_runs):
        h = (health or {}).get(jr["judge_run_id"]) or judge_run_health(jr)
        if h["parsed"] > 0:
            return i
    return 0


def judge_run_label(jr: dict, h: dict) -> str:
    """The judge-run picker's line: when, which, who, template, parsed of total, state (interrupted said so)."""
    state = h["state"]
    if h.get("interrupted") and state not in ("interrupted", "running"):
        state += ", interrupted"
    # the id keeps two runs of one judge in one minute apart (a selectbox tells options apart by their label)
    return (f"{str(jr['created_at'])[:16]} · {jr['judge_run_id'][:8]} · {jr['judge_model']} ({jr['judge_backend']}) · "
            f"{jr['template_version']} · {h['parsed']} of {h['total']} parsed · {state}")


def judge_run_notice(h: dict) -> tuple[str, str] | None:
    """(level, one line) for a stored judge run that is not a clean success: error when nothing parsed,
    warning when some failed or it was interrupted, info while it runs; None when every judgement parsed."""
    state, parsed, total = h["state"], h["parsed"], h["total"]
    why = f" ({h['note']})" if h.get("note") else ""
    cause = f" Cause: {h['cause'] or 'unknown'}"
    if state == "running":
        return "info", f"This judge run is still running: {parsed} of {total} judgements parsed so far."
    if state == "empty":
        if h.get("interrupted"):
            return "warning", f"This judge run was interrupted before any judgement{why}."
        return "error", f"This judge run failed: no judgement stored.{cause}"
    if state == "failed":
        verb = f"was interrupted{why} and failed" if h.get("interrupted") else "failed"
        return "error", f"This judge run {verb}: 0 of {total} judgements parsed.{cause}"
    if state == "partial":
        lead = f"This judge run was interrupted{why}; " if h.get("interrupted") else ""
        return "warning", f"{lead}{total - parsed} of {total} judgements failed.{cause}"
    if state == "interrupted":
        return "warning", (f"This judge run was interrupted{why}: its {parsed} judgements parsed, the rest of the "
                           "outputs were not judged.")
    return None


def judge_result_message(doc: dict) -> tuple[str, str]:
    """(level, one line) for a judge run that just ended (run_judge's document).

    success only when the run completed and every judgement parsed; error when none parsed (the cause in
    the line); warning when some failed or the run was interrupted (it reads "interrupted")."""
    judged = doc.get("judged", 0)
    failed = doc.get("failed", 0)
    parsed = judged - failed
    total = doc.get("total", judged)
    interrupted = doc.get("status") != "completed"
    jid = doc.get("judge_run_id", "")
    errs = [x["rationale"] for x in doc.get("scores", []) if x.get("status") == "failed" and x.get("rationale")]
    errs += [p.get("error") for p in doc.get("pairwise", []) if p.get("error")]
    cause = f" Cause: {one_line(max(set(errs), key=errs.count), 240, whole=True)}" if errs else ""
    why = f" ({one_line(doc['note'], 240, whole=True)})" if interrupted and doc.get("note") else ""
    stop = why or (f" after {judged} of {total} judge calls" if interrupted else "")
    if judged == 0:
        if interrupted:
            return "warning", f"Judge run {jid} interrupted before any judgement{why}."
        return "error", f"Judge run {jid} failed: nothing was judged."
    counts = f"{parsed} of {judged} judgements parsed, {failed} failed"
    if parsed == 0:
        verb = "interrupted" if interrupted else "failed"
        return "error", f"Judge run {jid} {verb}{stop}: {counts}.{cause}"
    if failed:
        verb = "interrupted" if interrupted else "partly failed"
        return "warning", f"Judge run {jid} {verb}{stop}: {counts}.{cause}"
    if interrupted:
        return "warning", f"Judge run {jid} interrupted{stop}: {counts}."
    return "success", f"Judge run {jid} done: {counts}."


def cut_mark(finish_reason: str | None, completion_tokens: int | None) -> str:
    """"cut at N tokens" for an output stopped by the token limit, else ""."""
    if (finish_reason or "").lower() in ("length", "max_tokens", "max_length"):
        return f"cut at {completion_tokens} tokens" if completion_tokens else "cut at the token limit"
    return ""


def calibration_rows(cal: dict) -> list[dict]:
    rows = []
    for name, a in cal["agreement"].items():
        rows.append({"criterion": name, "kappa_weighted": a["kappa_weighted"], "kappa 95% low": a["kappa_ci_low"],
                     "kappa 95% high": a["kappa_ci_high"], "spearman": a["spearman"], "exact": a["exact"],
                     "within one": a["within_one"], "alpha among people": a["alpha_people"], "n": a["n"],
                     "outputs": a["n_outputs"]})
    return rows


def confusion_rows(conf: dict | None) -> list[dict]:
    if not conf:
        return []
    return [{"judge \\ people": str(lab), **{str(c): n for c, n in zip(conf["labels"], row)}}
            for lab, row in zip(conf["labels"], conf["matrix"])]


BASE_MARKERS = ("base",)
INSTRUCT_MARKERS = ("instruct", "-it", "_it", " it ", "chat")


def default_judge_index(models: list[dict]) -> int:
    """The judge model offered first: the first instruction-tuned one (its name says instruct/it/chat), else
    the first not marked as a base model, else the first. A base model (Gemma 3 270M base) answers a rubric
    with noise, so it is never the default while an instruction-tuned model is there."""
    def text(m: dict) -> str:
        return " ".join(str(m.get(k) or "") for k in ("id", "alias", "display_name", "name")).casefold() + " "

    for i, m in enumerate(models):
        if any(k in text(m) for k in INSTRUCT_MARKERS) and not any(f" {k} " in f" {text(m)}" for k in BASE_MARKERS):
            return i
    for i, m in enumerate(models):
        if "base" not in text(m).replace("-", " ").split():
            return i
    return 0
