"""A benchmark running in a background thread, polled by the page (threads never touch the UI).

``BenchJob(models, prompt_set, settings).start()``; ``snapshot()`` gives a copy of the progress
that a page fragment can draw; ``cancel()`` asks the runner to stop (finished requests are kept).
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field

from core.bench import ModelSpec, Progress, PromptSet, RunOutcome, RunProgress, Runner, Settings
from core.errors import UserError


@dataclass
class JobSnapshot:
    run_id: str
    status: str                      # starting | running | completed | interrupted | error
    models: list = field(default_factory=list)   # ModelProgress copies
    done: int = 0
    total: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    error: str | None = None
    cancelling: bool = False


class _Collector(Progress):
    def __init__(self, job: "BenchJob"):
        self.job = job

    def on_start(self, progress: RunProgress) -> None:
        self.job._set(progress)

    def on_update(self, progress: RunProgress, model) -> None:
        self.job._set(progress)

    def on_complete(self, outcome: RunOutcome) -> None:
        self.job.outcome = outcome


class BenchJob:
    def __init__(self, models: list[ModelSpec], prompt_set: PromptSet, settings: Settings):
        self.cancel_event = threading.Event()
        self.runner = Runner(models, prompt_set, settings, progress=_Collector(self), cancel=self.cancel_event)
        self.run_id = self.runner.run_id
        self.outcome: RunOutcome | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._state: RunProgress | None = None
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"bench-{self.run_id}", daemon=True)

    def start(self) -> "BenchJob":
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.runner.run()
        except UserError as exc:
            self.error = exc.one_line()
        except Exception as exc:  # shown as one line on the page; the run is marked interrupted
            self.error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]

    def _set(self, progress: RunProgress) -> None:
        with self._lock:
            self._state = progress

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            state = self._state
            models = copy.deepcopy(state.models) if state else []
        if self.error:
            status = "error"
        elif self.outcome is not None and not self.running:
            status = self.outcome.status
        else:
            status = "running" if state else "starting"
        return JobSnapshot(
            run_id=self.run_id, status=status, models=models,
            done=sum(m.done for m in models), total=sum(m.total for m in models),
            elapsed_s=time.monotonic() - self._started, eta_s=state.eta_s() if state else None,
            error=self.error, cancelling=self.cancel_event.is_set() and self.running)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
