"""Where a run's results go: the store (``StoreRecorder``) or nowhere (``Recorder``, for perf scripts).

The runner says what to keep; a recorder decides how. One place to change when rows must be
written at another moment (as each request completes, say).
"""
from __future__ import annotations


class Recorder:
    """Keeps nothing (a run measured in memory only)."""

    def start_run(self, run_id: str, *, prompt_set, settings: dict, environment: dict) -> None:
        pass

    def save_level(self, run_model: dict, rows: list[dict]) -> None:
        pass

    def finish_run(self, run_id: str, status: str, reason: str | None) -> None:
        pass


class StoreRecorder(Recorder):
    """Writes the run, each level (its run_models row and its requests) and the run's end to the store."""

    def start_run(self, run_id: str, *, prompt_set, settings: dict, environment: dict) -> None:
        from core.store import bench as db
        db.mark_stale_runs()    # runs left 'running' a day ago by a process that died
        db.create_run(run_id, prompt_set=prompt_set.name, prompt_set_hash=prompt_set.hash,
                      settings=settings, environment=environment, prompts=prompt_set.prompts)

    def save_level(self, run_model: dict, rows: list[dict]) -> None:
        from core.store import bench as db
        db.save_level(run_model, rows)

    def finish_run(self, run_id: str, status: str, reason: str | None) -> None:
        from core.store import bench as db
        db.finish_run(run_id, status, reason)
