"""Candidates and their context, read from the store (benchmark runs) and the quality helper."""
from __future__ import annotations

import math

from core.decision.matrix import Candidate
from core.errors import UserError
from core.store import decisions as store


def _f(v):
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def parse_run_ids(spec) -> list[str]:
    if isinstance(spec, str):
        items = spec.split(",")
    else:
        items = [x for part in (spec or []) for x in str(part).split(",")]
    ids = list(dict.fromkeys(x.strip() for x in items if x and x.strip()))
    if not ids:
        raise UserError("no run id given: use --runs ID[,ID...]")
    return ids


def model_quality(run_id: str, prefer: str = "human", gate=None) -> tuple[dict, str | None]:
    """({model: {"mean","ci_low","ci_high","n","source"}}, problem or None) from the quality helper.

    When the helper is not installed or the run has no scores, quality is unknown ({}), never invented.
    """
    try:
        from core.quality import model_quality as mq  # type: ignore[attr-defined]
    except ImportError:
        return {}, None
    try:
        return dict(mq(run_id, prefer=prefer, gate=gate) or {}), None
    except UserError as exc:
        return {}, exc.one_line()


def load_candidates(run_ids, *, prefer: str = "human", gate=None) -> list[Candidate]:
    """One Candidate per (run, model, backend), at the lowest concurrency level of that run.

    ``gate`` (core.quality.calibration.Gate): when the judge is below it, quality resting on the judge
    is marked unverified (a flag with the reason, in the matrix, the record and the exports)."""
    ids = parse_run_ids(run_ids)
    known = {r["run_id"] for r in store.runs(ids)}
    missing = [r for r in ids if r not in known]
    if missing:
        raise UserError(f"unknown run id {', '.join(missing)}")
    rows = store.candidate_rows(ids)
    reqs: dict[tuple, list[dict]] = {}
    for q in store.measured_requests(ids):
        reqs.setdefault((q["run_id"], q["model"], q["backend"]), []).append(q)
    quality: dict[str, tuple[dict, str | None]] = {rid: model_quality(rid, prefer, gate) for rid in ids}
    out = []
    for r in rows:
        key = (r["run_id"], r["model"], r["backend"])
        ok = [q for q in reqs.get(key, []) if q["ok"]]
        q_by_model, q_problem = quality[r["run_id"]]
        # the quality helper labels a model "MODEL (BACKEND)" when it ran on two engines in one run
        q = q_by_model.get(f"{r['model']} ({r['backend']})") or q_by_model.get(r["model"])
        if q is not None and q.get("mean") is None:
            q = None
        notes = [f"benchmark: {n}" for n in (r["notes"] if isinstance(r["notes"], list) else [r["notes"]])]
        if q_problem:
            notes.append(f"quality unavailable: {q_problem}")
        if q is not None and q.get("verified") is False:
            notes.append(f"quality unverified: {q.get('reason') or 'judge below the trust gate'}")
        out.append(Candidate(
            run_id=r["run_id"], model=r["model"], backend=r["backend"], concurrency=r["concurrency"],
            status=r["status"], error=r["error"], peak_rss_mb=r["peak_rss_mb"], disk_mb=r["disk_mb"],
            throughput_tok_s=r.get("throughput_tok_s"),
            license=r["license"], load_s=r["load_s"], environment=r["environment"],
            e2e_ms=[_f(x["e2e_ms"]) for x in ok], ttft_ms=[_f(x["ttft_ms"]) for x in ok],
            tpot_ms=[_f(x["tpot_ms"]) for x in ok],
            requests_failed=len(reqs.get(key, [])) - len(ok), quality=q, notes=notes,
        ))
    return out


def run_context(run_ids) -> dict:
    """What a decision record keeps about its runs: environment, prompt set and hash, rubric and judge template."""
    ids = parse_run_ids(run_ids)
    out = {}
    for r in store.runs(ids):
        ctx = {
            "created_at": str(r["created_at"]) if r["created_at"] is not None else None,
            "status": r["status"],
            "prompt_set": r["prompt_set"],
            "prompt_set_hash": r["prompt_set_hash"],
            "settings": r["settings"],
            "environment": r["environment"],
            "rubrics": [],
            "judges": [],
        }
        try:
            from core.store import quality as qstore
            ctx["rubrics"] = list(qstore.rubrics_used(r["run_id"]))
            ctx["judges"] = [
                {k: j.get(k) for k in ("judge_run_id", "rubric", "judge_model", "judge_backend", "mode",
                                        "template_version", "status")}
                for j in qstore.judge_runs(r["run_id"])
            ]
        except (ImportError, AttributeError):
            pass
        out[r["run_id"]] = ctx
    return out
