"""SQL for quality: rubrics, check results, human scores, judge runs, judgements, pairwise verdicts.

Every function opens its own short connection (never held across a model call).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any, Iterable

from core.output import redact
from core.store.db import connect, fetch_dicts, from_json, retrying, to_json, utc_now


# ------------------------------------------------------------------ rubrics

def rubric_exists(name: str) -> bool:
    with connect() as con:
        return con.execute("SELECT count(*) FROM rubrics WHERE name = ?", [name]).fetchone()[0] > 0


def list_rubric_names() -> list[str]:
    with connect() as con:
        return [r[0] for r in con.execute("SELECT name FROM rubrics ORDER BY name").fetchall()]


def _delete_rubric(con, name: str) -> None:
    con.execute("DELETE FROM rubric_checks WHERE rubric = ?", [name])
    con.execute("DELETE FROM rubric_prompts WHERE rubric = ?", [name])
    con.execute("DELETE FROM rubric_criteria WHERE rubric = ?", [name])
    con.execute("DELETE FROM rubrics WHERE name = ?", [name])


@retrying
def delete_rubric(name: str) -> bool:
    with connect() as con:
        found = con.execute("SELECT count(*) FROM rubrics WHERE name = ?", [name]).fetchone()[0] > 0
        _delete_rubric(con, name)
        return found


def rubric_hash(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "format"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _latest_version(con, name: str) -> tuple[int, str] | None:
    row = con.execute("SELECT version, content_hash FROM rubric_versions WHERE rubric = ? ORDER BY version DESC "
                      "LIMIT 1", [name]).fetchone()
    return (int(row[0]), row[1]) if row else None


def rubric_versions(name: str) -> list[dict]:
    """Every stored version of a rubric, newest first: {"version", "content_hash", "created_at", "doc"}."""
    with connect() as con:
        rows = fetch_dicts(con.execute("SELECT version, content_hash, created_at, doc FROM rubric_versions "
                                       "WHERE rubric = ? ORDER BY version DESC", [name]), {"doc"})
    return rows


@retrying
def save_rubric(rubric) -> tuple[int, bool]:
    """Store the rubric as its current form (criteria, prompts, checks) in one transaction, and keep
    every version: other content than the latest version adds version N+1 (the old one stays in
    rubric_versions, and the scores given against it keep its number). Returns (version, new)."""
    doc = rubric.as_json()
    digest = rubric_hash(doc)
    with connect() as con:
        latest = _latest_version(con, rubric.name)
        if latest is not None and latest[1] == digest:
            rubric.version = latest[0]
            return latest[0], False
        version = (latest[0] + 1) if latest else 1
        con.execute("INSERT INTO rubric_versions (rubric, version, content_hash, doc, created_at) VALUES (?, ?, ?, ?, ?)",
                    [rubric.name, version, digest, to_json(doc), utc_now()])
        rubric.version = version
        write_current_form(con, rubric)
    return version, True


def write_current_form(con, rubric) -> None:
    """The rubric's current form (rubric, criteria, prompts, checks rows) replaced by ``rubric``'s, on ``con``."""
    _delete_rubric(con, rubric.name)
    con.execute("INSERT INTO rubrics (name, description, prompt_set, updated_at) VALUES (?, ?, ?, ?)",
                [rubric.name, rubric.description, rubric.prompt_set, utc_now()])
    con.executemany("INSERT INTO rubric_criteria (rubric, name, position, description, scale_min, scale_max, weight) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [[rubric.name, c.name, i, c.description, c.scale_min, c.scale_max,
                                                    c.weight] for i, c in enumerate(rubric.criteria)])
    prompts = [[rubric.name, pid, to_json(e.expected_aspects), e.reference_answer] for pid, e in rubric.prompts.items()]
    checks = [[rubric.name, pid, i, to_json(c)] for pid, cs in [("*", rubric.checks), *(
        (p, e.checks) for p, e in rubric.prompts.items())] for i, c in enumerate(cs)]
    for sql, rows in (("rubric_prompts (rubric, prompt_id, expected_aspects, reference_answer)", prompts),
                      ("rubric_checks (rubric, prompt_id, position, spec)", checks)):
        if rows:
            con.executemany(f"INSERT INTO {sql} VALUES (?, ?, ?, ?)", rows)


def load_rubric(name: str) -> dict | None:
    """The rubric in its JSON file form, or None."""
    with connect() as con:
        head = con.execute("SELECT name, description, prompt_set FROM rubrics WHERE name = ?", [name]).fetchone()
        if head is None:
            return None
        crit = con.execute("SELECT name, description, scale_min, scale_max, weight FROM rubric_criteria "
                           "WHERE rubric = ? ORDER BY position", [name]).fetchall()
        prompts = con.execute("SELECT prompt_id, expected_aspects, reference_answer FROM rubric_prompts "
                              "WHERE rubric = ? ORDER BY prompt_id", [name]).fetchall()
        checks = con.execute("SELECT prompt_id, spec FROM rubric_checks WHERE rubric = ? ORDER BY prompt_id, position",
                             [name]).fetchall()
        latest = _latest_version(con, name)
    out: dict[str, Any] = {"name": head[0], "description": head[1] or ""}
    if head[2]:
        out["prompt_set"] = head[2]
    out["criteria"] = [{"name": n, "description": d, "scale": [lo, hi], "weight": w} for n, d, lo, hi, w in crit]
    out["checks"] = [from_json(spec) for pid, spec in checks if pid == "*"]
    out["prompts"] = {}
    for pid, aspects, ref in prompts:
        p: dict[str, Any] = {"expected_aspects": from_json(aspects) or []}
        if ref:
            p["reference_answer"] = ref
        out["prompts"][pid] = p
    for pid, spec in checks:
        if pid != "*":
            out["prompts"].setdefault(pid, {"expected_aspects": []}).setdefault("checks", []).append(from_json(spec))
    out["_version"] = latest[0] if latest else None
    return out


# ------------------------------------------------------------------ runs and their outputs

def run_exists(run_id: str) -> bool:
    with connect() as con:
        return con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] > 0


def run_outputs(run_id: str) -> list[dict]:
    """One output per model x backend x prompt: the first successful measured request
    (lowest concurrency, then round, then start offset)."""
    with connect() as con:
        cur = con.execute(
            "SELECT q.request_id, q.run_id, q.model, q.backend, q.prompt_id, q.output_text, "
            "       q.finish_reason, q.completion_tokens, "
            "       coalesce(p.position, 0) AS position, p.text AS prompt_text "
            "FROM requests q LEFT JOIN run_prompts p ON p.run_id = q.run_id AND p.prompt_id = q.prompt_id "
            "WHERE q.run_id = ? AND q.ok AND NOT q.warmup "
            "QUALIFY row_number() OVER (PARTITION BY q.model, q.backend, q.prompt_id "
            "        ORDER BY q.concurrency, q.round, q.start_offset_s NULLS LAST, q.request_id) = 1 "
            "ORDER BY position, q.prompt_id, q.model, q.backend",
            [run_id])
        return fetch_dicts(cur)


def run_prompts(run_id: str) -> list[dict]:
    with connect() as con:
        return fetch_dicts(con.execute("SELECT prompt_id, position, text FROM run_prompts WHERE run_id = ? ORDER BY position",
                                 [run_id]))


# ------------------------------------------------------------------ checks

@retrying
def replace_check_results(run_id: str, rubric: str, results: list[dict]) -> None:
    now = utc_now()
    with connect() as con:
        con.execute("DELETE FROM check_results WHERE run_id = ? AND rubric = ?", [run_id, rubric])
        if results:
            con.executemany(
                "INSERT INTO check_results (run_id, request_id, rubric, check_key, kind, spec, passed, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[r["run_id"], r["request_id"], r["rubric"], r["check_key"], r["kind"], to_json(r["spec"]),
                  r["passed"], r["detail"], now] for r in results])


def check_results(run_id: str, rubric: str | None = None) -> list[dict]:
    with connect() as con:
        sql = ("SELECT c.request_id, c.rubric, c.check_key, c.kind, c.spec, c.passed, c.detail, q.model, q.backend, "
               "q.prompt_id FROM check_results c JOIN requests q ON q.request_id = c.request_id WHERE c.run_id = ?")
        params: list[Any] = [run_id]
        if rubric:
            sql += " AND c.rubric = ?"
            params.append(rubric)
        rows = fetch_dicts(con.execute(sql + " ORDER BY q.prompt_id, q.model, c.check_key", params))
    for r in rows:
        r["spec"] = from_json(r["spec"])
    return rows


# ------------------------------------------------------------------ human scores

@retrying
def save_human_scores(entries: Iterable[dict], *, rubric_version: int | None = None) -> int:
    """Merge scores and comments in ONE transaction (all or nothing), by (output, criterion, rater).

    Each entry: run_id, request_id, rubric, rater, scores {criterion: value}, comment (str|None).
    A criterion an entry does not carry keeps its stored score; a comment of None keeps the stored one
    ("" clears it). Batched: a handful of statements whatever the number of entries.
    """
    entries = list(entries)
    if not entries:
        return 0
    now = utc_now()
    score_rows = [[e["run_id"], e["request_id"], e["rubric"], e["rater"], c, float(v), rubric_version, now]
                  for e in entries for c, v in e["scores"].items()]
    comment_rows = [[e["run_id"], e["request_id"], e["rubric"], e["rater"], e["comment"], now]
                    for e in entries if e.get("comment") is not None]
    with connect() as con:
        if score_rows:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS _hs_in (run_id VARCHAR, request_id VARCHAR, rubric VARCHAR, "
                        "rater VARCHAR, criterion VARCHAR, score DOUBLE, rubric_version INTEGER, updated_at TIMESTAMP)")
            con.execute("DELETE FROM _hs_in")
            con.executemany("INSERT INTO _hs_in VALUES (?, ?, ?, ?, ?, ?, ?, ?)", score_rows)
            con.execute("DELETE FROM human_scores h USING _hs_in i WHERE h.request_id = i.request_id "
                        "AND h.rubric = i.rubric AND h.rater = i.rater AND h.criterion = i.criterion")
            con.execute("INSERT INTO human_scores (run_id, request_id, rubric, rater, criterion, score, rubric_version, "
                        "updated_at) SELECT * FROM _hs_in")
        if comment_rows:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS _hc_in (run_id VARCHAR, request_id VARCHAR, rubric VARCHAR, "
                        "rater VARCHAR, comment VARCHAR, updated_at TIMESTAMP)")
            con.execute("DELETE FROM _hc_in")
            con.executemany("INSERT INTO _hc_in VALUES (?, ?, ?, ?, ?, ?)", comment_rows)
            con.execute("DELETE FROM human_comments h USING _hc_in i WHERE h.request_id = i.request_id "
                        "AND h.rubric = i.rubric AND h.rater = i.rater")
            con.execute("INSERT INTO human_comments (run_id, request_id, rubric, rater, comment, updated_at) "
                        "SELECT * FROM _hc_in WHERE comment <> ''")
    return len(entries)


def human_scores(run_id: str, rubric: str | None = None, rater: str | None = None) -> list[dict]:
    sql = ("SELECT h.request_id, h.rubric, h.rater, h.criterion, h.score, q.model, q.backend, q.prompt_id "
           "FROM human_scores h JOIN requests q ON q.request_id = h.request_id WHERE h.run_id = ?")
    params: list[Any] = [run_id]
    if rubric:
        sql += " AND h.rubric = ?"
        params.append(rubric)
    if rater:
        sql += " AND h.rater = ?"
        params.append(rater)
    with connect() as con:
        return fetch_dicts(con.execute(sql + " ORDER BY h.request_id, h.rater, h.criterion", params))


def human_comments(run_id: str, rubric: str, rater: str | None = None) -> dict[tuple[str, str], str]:
    sql = "SELECT request_id, rater, comment FROM human_comments WHERE run_id = ? AND rubric = ?"
    params: list[Any] = [run_id, rubric]
    if rater:
        sql += " AND rater = ?"
        params.append(rater)
    with connect() as con:
        return {(r, who): c for r, who, c in con.execute(sql, params).fetchall()}


def raters(run_id: str, rubric: str | None = None) -> list[str]:
    sql = "SELECT DISTINCT rater FROM human_scores WHERE run_id = ?"
    params: list[Any] = [run_id]
    if rubric:
        sql += " AND rubric = ?"
        params.append(rubric)
    with connect() as con:
        return [r[0] for r in con.execute(sql + " ORDER BY rater", params).fetchall()]


# ------------------------------------------------------------------ judge

@retrying
def ensure_template(version: str, kind: str, text: str) -> None:
    with connect() as con:
        row = con.execute("SELECT text FROM judge_templates WHERE version = ?", [version]).fetchone()
        if row is None:
            con.execute("INSERT INTO judge_templates (version, kind, text, created_at) VALUES (?, ?, ?, ?)",
                        [version, kind, text, utc_now()])
        elif row[0] != text:
            raise RuntimeError(f"judge template {version} changed without a new version number")


def template_text(version: str) -> str | None:
    with connect() as con:
        row = con.execute("SELECT text FROM judge_templates WHERE version = ?", [version]).fetchone()
    return row[0] if row else None


# Judge runs this process is running right now. A judge run stored as 'running' by this process but not in
# here has lost its runner (its thread ended without recording how: e.g. the final write failed).
_ACTIVE_JUDGE_RUNS: set[str] = set()

JUDGE_STALE_NOTE = "the process running it ended before the judge run finished"


@retrying
def create_judge_run(*, run_id: str, rubric: str, judge_model: str, judge_backend: str, judge_endpoint: str | None,
                     mode: str, template_version: str, settings: dict, warnings: list[str],
                     rubric_version: int | None = None) -> str:
    from core.store.bench import runner_identity

    judge_run_id = uuid.uuid4().hex[:16]
    me = runner_identity()
    _ACTIVE_JUDGE_RUNS.add(judge_run_id)
    with connect() as con:
        con.execute(
            "INSERT INTO judge_runs (judge_run_id, run_id, rubric, judge_model, judge_backend, judge_endpoint, mode, "
            "template_version, settings, warnings, status, rubric_version, created_at, runner_pid, runner_host, "
            "runner_started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            [judge_run_id, run_id, rubric, judge_model, judge_backend, redact(judge_endpoint), mode, template_version,
             to_json(settings), to_json(warnings), rubric_version, utc_now(), me["runner_pid"], me["runner_host"],
             me["runner_started"]])
    return judge_run_id


def finish_judge_run(judge_run_id: str, status: str, note: str | None = None) -> None:
    """Record how a judge run ended (completed | interrupted, with why). Whatever happens here, this
    process stops counting it as its own running judge run, so a failed write still reads 'interrupted'."""
    try:
        _finish_judge_run(judge_run_id, status, note)
    finally:
        _ACTIVE_JUDGE_RUNS.discard(judge_run_id)


@retrying
def _finish_judge_run(judge_run_id: str, status: str, note: str | None) -> None:
    with connect() as con:
        con.execute("UPDATE judge_runs SET status = ?, note = ?, finished_at = ? WHERE judge_run_id = ?",
                    [status, redact(note), utc_now(), judge_run_id])


def _judge_runner_alive(judge_run_id: str, pid, host, started, this_host: str) -> bool | None:
    """As core.store.bench._runner_alive, and a run of this very process is alive only while it runs here."""
    import os

    from core.store.bench import _runner_alive

    alive = _runner_alive(pid, host, started, this_host)
    if alive and pid is not None and int(pid) == os.getpid():
        return judge_run_id in _ACTIVE_JUDGE_RUNS
    return alive


@retrying
def mark_stale_judge_runs(older_than_s: float = 24 * 3600) -> int:
    """Judge runs left 'running' by a runner that is gone become 'interrupted' (like mark_stale_runs).

    A runner on this host is checked by PID (and create time; in this process: is it still running it);
    one on another host, or a judge run from before runners were recorded, only after ``older_than_s``."""
    import socket

    this_host = socket.gethostname()
    with connect() as con:
        running = con.execute(
            "SELECT judge_run_id, runner_pid, runner_host, runner_started, created_at < ? AS old "
            "FROM judge_runs WHERE status = 'running'",
            [utc_now() - timedelta(seconds=float(older_than_s))]).fetchall()
        stale = [jid for jid, pid, host, started, old in running
                 if (alive := _judge_runner_alive(jid, pid, host, started, this_host)) is False
                 or (alive is None and old)]
        for jid in stale:
            con.execute("UPDATE judge_runs SET status = 'interrupted', note = coalesce(note, ?) "
                        "WHERE judge_run_id = ? AND status = 'running'", [JUDGE_STALE_NOTE, jid])
    return len(stale)


@retrying
def save_judgement(*, judge_run_id: str, run_id: str, request_id: str, rubric: str, template_version: str,
                   status: str, scores: dict[str, float] | None, rationale: str | None, raw: str | None,
                   raw_attempts: list[str], attempts: int, error: str | None, messages: list[dict],
                   constrained: bool | None = None, rubric_version: int | None = None) -> str:
    judgement_id = uuid.uuid4().hex[:16]
    with connect() as con:
        con.execute(
            "INSERT INTO judgements (judgement_id, judge_run_id, run_id, request_id, rubric, template_version, status, "
            "rationale, raw, raw_attempts, attempts, error, messages, constrained, rubric_version, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [judgement_id, judge_run_id, run_id, request_id, rubric, template_version, status, rationale, raw,
             to_json(raw_attempts), attempts, redact(error), to_json(messages), constrained, rubric_version, utc_now()])
        if scores:
            con.executemany("INSERT INTO judge_scores (judgement_id, criterion, score) VALUES (?, ?, ?)",
                            [[judgement_id, c, float(v)] for c, v in scores.items()])
    return judgement_id


@retrying
def save_pairwise(row: dict) -> None:
    cols = ("judge_run_id", "run_id", "rubric", "prompt_id", "request_a", "request_b", "model_a", "model_b",
            "template_version", "verdict_ab", "verdict_ba", "verdict", "rationale_ab", "rationale_ba", "raw_ab",
            "raw_ba", "error")
    with connect() as con:
        con.execute(f"INSERT INTO pairwise_verdicts ({', '.join(cols)}, created_at) "
                    f"VALUES ({', '.join('?' for _ in cols)}, ?)",
                    [row.get(c) for c in cols] + [utc_now()])


def judge_runs(run_id: str, *, mode: str | None = None, rubric: str | None = None) -> list[dict]:
    """Judge runs of a run, newest first (one whose runner is gone: interrupted)."""
    mark_stale_judge_runs()
    sql = "SELECT * FROM judge_runs WHERE run_id = ?"
    params: list[Any] = [run_id]
    if mode:
        sql += " AND mode = ?"
        params.append(mode)
    if rubric:
        sql += " AND rubric = ?"
        params.append(rubric)
    with connect() as con:
        rows = fetch_dicts(con.execute(sql + " ORDER BY created_at DESC, judge_run_id", params))
    for r in rows:
        r["settings"] = from_json(r["settings"])
        r["warnings"] = from_json(r["warnings"]) or []
    return rows


def judgements(judge_run_id: str) -> list[dict]:
    """Judgements of a judge run with their scores ({criterion: score}) and the candidate's model."""
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT j.judgement_id, j.request_id, j.status, j.rationale, j.raw, j.attempts, j.error, "
            "       j.template_version, j.constrained, j.rubric_version, q.model, q.backend, q.prompt_id, "
            "       q.output_text, q.completion_tokens, q.finish_reason "
            "FROM judgements j JOIN requests q ON q.request_id = j.request_id "
            "WHERE j.judge_run_id = ? ORDER BY q.prompt_id, q.model, j.created_at", [judge_run_id]))
        scores = con.execute(
            "SELECT s.judgement_id, s.criterion, s.score FROM judge_scores s JOIN judgements j "
            "ON j.judgement_id = s.judgement_id WHERE j.judge_run_id = ?", [judge_run_id]).fetchall()
    by_id: dict[str, dict] = {}
    for jid, crit, score in scores:
        by_id.setdefault(jid, {})[crit] = score
    for r in rows:
        r["scores"] = by_id.get(r["judgement_id"], {})
    return rows


def judgement_messages(judgement_id: str) -> list[dict] | None:
    with connect() as con:
        row = con.execute("SELECT messages FROM judgements WHERE judgement_id = ?", [judgement_id]).fetchone()
    return from_json(row[0]) if row else None


def pairwise_verdicts(judge_run_id: str) -> list[dict]:
    with connect() as con:
        return fetch_dicts(con.execute("SELECT * FROM pairwise_verdicts WHERE judge_run_id = ? ORDER BY prompt_id, model_a, "
                                 "model_b", [judge_run_id]))


def rubrics_used(run_id: str) -> list[str]:
    """Rubrics a run was scored with (by judge or people), most recent first."""
    with connect() as con:
        rows = con.execute(
            "SELECT rubric, max(t) AS t FROM ("
            " SELECT rubric, created_at AS t FROM judge_runs WHERE run_id = ?"
            " UNION ALL SELECT rubric, updated_at AS t FROM human_scores WHERE run_id = ?"
            ") GROUP BY rubric ORDER BY t DESC, rubric", [run_id, run_id]).fetchall()
    return [r[0] for r in rows]
