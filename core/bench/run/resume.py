"""Resuming a run that did not end: the same settings, prompts and models, only the requests it misses.

``spec_record(spec)`` is what a run keeps about each model (its ModelSpec and a fingerprint of its
files); ``plan_resume(run_id, prompts=None)`` checks that nothing changed (the prompt set's hash, the
model files) and returns what ``Runner`` needs to run the missing requests as a new sitting.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from core.bench.run.inputs import ModelSpec, PromptSet, Settings
from core.errors import UserError

_SPEC_FIELDS = {f.name for f in fields(ModelSpec)}


def files_fingerprint(path: str | None) -> str | None:
    """sha256 over the names, sizes and modification times of a model's files (a file or a folder)."""
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if p.is_dir() else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def spec_record(spec: ModelSpec) -> dict:
    """What a run keeps about a model: its ModelSpec (an API key's variable NAME only) and its files."""
    return {**asdict(spec), "files": files_fingerprint(spec.path)}


@dataclass
class ResumePlan:
    run_id: str
    models: list[ModelSpec]
    prompt_set: PromptSet
    settings: Settings
    previous: dict            # (model, backend, concurrency) -> {"rows": [...], "run_model": {...}}
    segment: int
    missing: int              # measured requests still to run


def plan_resume(run_id: str, prompts: PromptSet | None = None) -> ResumePlan:
    """What resuming ``run_id`` runs. UserError when it cannot be resumed (unknown, running, changed)."""
    from core.store import bench as db
    run = db.get_run(run_id)
    if run is None:
        raise UserError(f"unknown run {run_id!r}")
    if run["status"] == "running":
        raise UserError(f"run {run_id} is still running (process {run.get('runner_pid')} on {run.get('runner_host')})")
    if not run.get("specs"):
        raise UserError(f"run {run_id} was stored before runs could be resumed (no model list kept)")
    if (run.get("settings") or {}).get("sweep"):
        raise UserError(f"run {run_id} is a length sweep: it cannot be resumed; start a new sweep")
    stored = PromptSet(name=run["prompt_set"] or "prompts",
                       prompts=[{"id": p["prompt_id"], "text": p["text"], "tags": p["tags"] or []}
                                for p in run["prompts"]])
    if stored.hash != run["prompt_set_hash"]:
        raise UserError(f"run {run_id}: its stored prompts do not match its prompt set hash")
    if prompts is not None and prompts.hash != run["prompt_set_hash"]:
        raise UserError(f"run {run_id} used another prompt set (sha256 {run['prompt_set_hash'][:12]}…, "
                        f"this one {prompts.hash[:12]}…): start a new run instead")
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in (run["settings"] or {}).items() if k in known}).validate()
    models = []
    for rec in run["specs"]:
        spec = ModelSpec(**{k: v for k, v in rec.items() if k in _SPEC_FIELDS})
        if rec.get("files") is not None and files_fingerprint(spec.path) != rec["files"]:
            raise UserError(f"run {run_id}: the files of model {spec.name!r} changed since the run "
                            f"({spec.path}): start a new run instead")
        models.append(spec)
    df = db.run_requests(run_id)
    rows = [db.clean_row(r) for r in df.to_dict("records")] if len(df) else []
    previous: dict = {}
    for m in run["models"]:
        key = (m["model"], m["backend"], int(m["concurrency"]))
        previous[key] = {"rows": [r for r in rows if (r["model"], r["backend"], int(r["concurrency"])) == key],
                         "run_model": {k: v for k, v in db.clean_row(m).items() if k != "status"}}
    for r in rows:   # requests stored before their level's row (a kill between the two)
        previous.setdefault((r["model"], r["backend"], int(r["concurrency"])), {"rows": [], "run_model": None})
    for key, prev in previous.items():
        if prev["run_model"] is None:
            prev["rows"] = [r for r in rows if (r["model"], r["backend"], int(r["concurrency"])) == key]
    planned = settings.rounds * len(stored.prompts)
    missing = sum(max(0, planned - len(previous.get((m.model, m.backend, c), {"rows": []})["rows"]))
                  for m in models for c in settings.concurrency)
    return ResumePlan(run_id, models, stored, settings, previous, db.next_segment(run_id), missing)


def resume_runner_kwargs(plan: ResumePlan) -> dict:
    return {"run_id": plan.run_id, "resume": plan.previous, "segment": plan.segment}
