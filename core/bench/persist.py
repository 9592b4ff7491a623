"""Where a run's results go: the store (``StoreRecorder``) or nowhere (``Recorder``, for perf scripts).

The runner says what to keep; a recorder decides how. ``StoreRecorder`` writes each request row as
it completes, from a writer thread (the event loop that times the requests never waits for the
database), so a kill loses only the requests in flight; a level's row is written when it starts
(status 'running') and again, with its final numbers and its requests' final values, when it ends.
"""
from __future__ import annotations

import queue
import threading


class Recorder:
    """Keeps nothing (a run measured in memory only)."""

    def start_run(self, run_id: str, *, prompt_set, settings: dict, environment: dict,
                  specs: list[dict] | None = None, resume: bool = False) -> None:
        pass

    def save_request(self, row: dict) -> None:
        pass

    def flush(self) -> None:
        pass

    def save_level(self, run_model: dict, rows: list[dict]) -> None:
        pass

    def finish_run(self, run_id: str, status: str, reason: str | None) -> None:
        pass


class StoreRecorder(Recorder):
    """Writes the run, each request as it completes, each level and the run's end to the store."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start_run(self, run_id: str, *, prompt_set, settings: dict, environment: dict,
                  specs: list[dict] | None = None, resume: bool = False) -> None:
        from core.store import bench as db
        db.mark_stale_runs()    # runs left 'running' by a process that is gone
        if resume:
            db.reopen_run(run_id)
        else:
            db.create_run(run_id, prompt_set=prompt_set.name, prompt_set_hash=prompt_set.hash,
                          settings=settings, environment=environment, prompts=prompt_set.prompts, specs=specs)
        self._thread = threading.Thread(target=self._writer, name="bench-store-writer", daemon=True)
        self._thread.start()

    # rows as they complete -----------------------------------------------------------------------
    def save_request(self, row: dict) -> None:
        self._queue.put(dict(row))

    def _writer(self) -> None:
        from core.store import bench as db
        while True:
            item = self._queue.get()
            batch, stop = [], item is None
            if not stop:
                batch.append(item)
            while True:          # every row that arrived meanwhile goes in the same transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    batch.append(more)
            try:
                if batch:
                    db.save_requests(batch)
            except BaseException as exc:   # kept; the level's final write retries these rows
                self._error = exc
            finally:
                for _ in range(len(batch) + (1 if stop else 0)):
                    self._queue.task_done()
            if stop:
                return

    def flush(self) -> None:
        if self._thread is not None:
            self._queue.join()

    def save_level(self, run_model: dict, rows: list[dict]) -> None:
        from core.store import bench as db
        self.flush()
        db.save_level(run_model, rows)

    def finish_run(self, run_id: str, status: str, reason: str | None) -> None:
        from core.store import bench as db
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        db.finish_run(run_id, status, reason)
