"""The outputs of a benchmark run that quality scores, and the names their models go by.

One output per model x engine x prompt: the first successful measured request (lowest concurrency,
then round). Warm-ups and failed requests are never scored.

A candidate's name ("label") is the model id as the run stored it; when the same model ran on more
than one engine in the run, it becomes "MODEL (BACKEND)" so the two stay apart.
"""
from __future__ import annotations

from core.errors import UserError


def candidate_labels(rows: list[dict]) -> dict[tuple[str, str], str]:
    backends: dict[str, set[str]] = {}
    for r in rows:
        backends.setdefault(r["model"], set()).add(r["backend"])
    return {(r["model"], r["backend"]): (r["model"] if len(backends[r["model"]]) == 1 else f"{r['model']} ({r['backend']})")
            for r in rows}


def label_rows(rows: list[dict], labels: dict[tuple[str, str], str]) -> list[dict]:
    """Replace each row's "model" with its candidate label (keeps the raw id in "model_id")."""
    for r in rows:
        r["model_id"] = r["model"]
        r["model"] = labels.get((r["model"], r["backend"]), r["model"])
    return rows


def run_outputs(run_id: str, *, require: bool = True) -> list[dict]:
    """request_id, run_id, model (label), model_id, backend, prompt_id, position, prompt_text, output_text."""
    from core.store import quality as store

    if require and not store.run_exists(run_id):
        raise UserError(f"unknown run {run_id!r}")
    rows = store.run_outputs(run_id)
    for r in rows:
        r["output_text"] = r["output_text"] or ""
        r["prompt_text"] = r["prompt_text"] or ""
    return label_rows(rows, candidate_labels(rows))


def run_labels(run_id: str) -> dict[tuple[str, str], str]:
    from core.store import quality as store

    return candidate_labels(store.run_outputs(run_id))
