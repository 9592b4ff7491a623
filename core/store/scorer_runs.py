"""SQL for the automatic scorers' runs: a whole run stored as one completed pointwise judge run (judge_runs,
judgements, judge_scores: the tables an LLM judge's run uses, so every rater is read the same way)."""
from __future__ import annotations

import uuid

from core.store.db import connect, retrying, to_json, utc_now


@retrying
def save_scorer_run(*, run_id: str, rubric: str, rubric_version: int | None, judge_model: str, judge_backend: str,
                    template_version: str, settings: dict, rows: list[dict]) -> str:
    """A whole automatic-scorer run as one completed judge run in ONE transaction (all or nothing).
    rows: {request_id, scores {criterion: value}, rationale}."""
    from core.store.bench import runner_identity

    judge_run_id = uuid.uuid4().hex[:16]
    me = runner_identity()
    now = utc_now()
    ids = [uuid.uuid4().hex[:16] for _ in rows]
    with connect() as con:
        con.execute(
            "INSERT INTO judge_runs (judge_run_id, run_id, rubric, judge_model, judge_backend, judge_endpoint, mode, "
            "template_version, settings, warnings, status, rubric_version, created_at, runner_pid, runner_host, "
            "runner_started, finished_at) VALUES (?, ?, ?, ?, ?, NULL, 'pointwise', ?, ?, '[]', 'completed', ?, ?, ?, "
            "?, ?, ?)",
            [judge_run_id, run_id, rubric, judge_model, judge_backend, template_version, to_json(settings),
             rubric_version, now, me["runner_pid"], me["runner_host"], me["runner_started"], now])
        if rows:
            con.executemany(
                "INSERT INTO judgements (judgement_id, judge_run_id, run_id, request_id, rubric, template_version, "
                "status, rationale, raw, raw_attempts, attempts, error, messages, constrained, rubric_version, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, '[]', 1, NULL, '[]', NULL, ?, ?)",
                [[jid, judge_run_id, run_id, r["request_id"], rubric, template_version,
                  "ok" if r["scores"] else "failed", r["rationale"], rubric_version, now] for jid, r in zip(ids, rows)])
            scores = [[jid, c, float(v)] for jid, r in zip(ids, rows) for c, v in r["scores"].items()]
            if scores:
                con.executemany("INSERT INTO judge_scores (judgement_id, criterion, score) VALUES (?, ?, ?)", scores)
    return judge_run_id
