"""A named decision: weights, constraints, candidates and their numbers, run context, winner, notes."""
from __future__ import annotations

from datetime import datetime, timezone

from core.decision.data import run_context
from core.decision.engine import as_document
from core.errors import UserError
from core.store import decisions as store


def build_record(name: str, result, run_ids: list[str], *, notes: str = "", context: dict | None = None) -> dict:
    """The record as stored and exported (context is read from the runs when not given); ``result`` is an
    engine.Decision (kept as its `--json` document) or that document."""
    result = as_document(result)
    name = (name or "").strip()
    if not name:
        raise UserError("a decision needs a name")
    if context is None:
        context = {"runs": run_context(run_ids)}
    return {
        "name": name,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "winner": result.get("winner"),
        "run_ids": list(run_ids),
        "weights": dict(result["weights"]),
        "constraints": {"constraints": list(result.get("constraints", [])),
                        "require_commercial": bool(result.get("require_commercial"))},
        "latency_metric": result["latency_metric"],
        "normalization": result["normalization"],
        "result": result,
        "context": context,
        "notes": notes or "",
        "warnings": list(result.get("warnings", [])),
    }


def save(record: dict, *, replace: bool = False) -> dict:
    """Store a record; a name already used is refused unless `replace`."""
    if not replace and store.decision_exists(record["name"]):
        raise UserError(f"a decision named '{record['name']}' exists: choose another name or replace it")
    store.save_decision(record, replace=replace)
    return record


def load(name: str) -> dict:
    rec = store.get_decision(name)
    if rec is None:
        raise UserError(f"no saved decision named '{name}'")
    for k in ("created_at", "updated_at"):
        if rec.get(k) is not None and not isinstance(rec[k], str):
            rec[k] = rec[k].strftime("%Y-%m-%d %H:%M UTC")  # the store's clock is UTC (core.store.db.utc_now)
    rec["warnings"] = list((rec.get("result") or {}).get("warnings", []))
    return rec


def names() -> list[str]:
    return [r["name"] for r in store.list_decisions()]


def set_notes(name: str, notes: str) -> None:
    if not store.update_notes(name, notes):
        raise UserError(f"no saved decision named '{name}'")
