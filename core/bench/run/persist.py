"""Where a run's results go: the store (``StoreRecorder``) or nowhere (``Recorder``, for perf scripts).

The runner says what to keep; a recorder decides how. ``StoreRecorder`` appends each request row to the
run's journal as it completes (microseconds, no database work while the model is measured), so a kill
loses only the requests in flight; a level's row is written when it starts (status 'running') and again,
with its final numbers and its requests, when it ends. A run whose process died has its journal imported
by ``core.store.bench.mark_stale_runs``: the CLI router and the app run it before reading runs, a run at its start.
"""
from __future__ import annotations

import threading


class Recorder:
    """Keeps nothing (a run measured in memory only)."""

    def start_run(self, run_id: str, *, prompt_set, settings: dict, environment: dict,
                  specs: list[dict] | None = None, resume: bool = False) -> None:
        pass

    def save_request(self, row: dict) -> None:
        pass

    def save_level(self, run_model: dict, rows: list[dict]) -> None:
        pass

    def save_sweep(self, sweep: dict) -> None:
        """A length sweep's record (core.bench.sweep.plan)."""

    def end_environment(self, run_id: str, environment_end: dict) -> None:
        pass

    def finish_run(self, run_id: str, status: str, reason: str | None) -> None:
        pass


class StoreRecorder(Recorder):
    """Writes the run, each request as it completes (journal), each level and the run's end to the store."""

    def __init__(self):
        self._journal = None
        self._lock = threading.Lock()

    def start_run(self, run_id: str, *, prompt_set, settings: dict, environment: dict,
                  specs: list[dict] | None = None, resume: bool = False) -> None:
        from core.store import bench as db
        db.mark_stale_runs()    # runs left 'running' by a process that is gone (their journals imported)
        if resume:
            db.reopen_run(run_id)
        else:
            db.create_run(run_id, prompt_set=prompt_set.name, prompt_set_hash=prompt_set.hash,
                          settings=settings, environment=environment, prompts=prompt_set.prompts, specs=specs)
        self._journal = db.open_journal(run_id)

    def save_request(self, row: dict) -> None:
        from core.store.bench import journal_line
        line = journal_line(row)
        with self._lock:
            if self._journal is not None:
                self._journal.write(line)     # line-buffered: in the OS at once, safe from a kill

    def save_level(self, run_model: dict, rows: list[dict]) -> None:
        from core.store import bench as db
        db.save_level(run_model, rows)

    def save_sweep(self, sweep: dict) -> None:
        from core.store.lengths import save_sweep
        save_sweep(sweep)

    def end_environment(self, run_id: str, environment_end: dict) -> None:
        from core.store import bench as db
        db.set_environment_end(run_id, environment_end)

    def finish_run(self, run_id: str, status: str, reason: str | None) -> None:
        from core.store import bench as db
        db.finish_run(run_id, status, reason)
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        db.import_journal(run_id)   # rows of a level cut short by an error, if any; then the journal goes
