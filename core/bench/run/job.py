"""A benchmark running in a background thread, polled by the page (threads never touch the UI).

``BenchJob(models, prompt_set, settings).start()``; ``snapshot()`` gives a copy of the progress
that a page fragment can draw; ``cancel()`` asks the runner to stop (finished requests are kept).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from core.bench.run.inputs import ModelSpec, PromptSet, Settings
from core.bench.run.progress import Progress, RunOutcome, RunProgress
from core.bench.run.runner import Runner
from core.jobs import Job


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


class BenchJob(Job):
    def __init__(self, models: list[ModelSpec], prompt_set: PromptSet, settings: Settings, *, runner_cls=Runner,
                 **runner_kwargs):
        super().__init__(self._run_bench)
        # runner_cls: Runner, or core.bench.sweep.plan.LengthSweep (then prompt_set is the list of lengths)
        self.runner = runner_cls(models, prompt_set, settings, progress=_Collector(self), cancel=self.cancel_event,
                                 **runner_kwargs)
        self.run_id = self.runner.run_id
        self.outcome: RunOutcome | None = None
        self._progress: RunProgress | None = None
        self._started = time.monotonic()

    @classmethod
    def resume(cls, run_id: str) -> "BenchJob":
        """Run what a stored run that did not end is missing (UserError when it cannot be resumed)."""
        from core.bench.run.resume import plan_resume, resume_runner_kwargs
        plan = plan_resume(run_id)
        return cls(plan.models, plan.prompt_set, plan.settings, **resume_runner_kwargs(plan))

    def start(self) -> "BenchJob":
        self._started = time.monotonic()
        super().start()
        return self

    def _run_bench(self, progress, cancel) -> None:  # progress arrives through _Collector instead
        self.runner.run()

    def _set(self, progress: RunProgress) -> None:
        with self._lock:
            self._progress = progress

    @property
    def error(self) -> str | None:
        return Job.snapshot(self)["error"]

    def snapshot(self) -> JobSnapshot:
        base = Job.snapshot(self)
        with self._lock:
            state = self._progress
            models = copy.deepcopy(state.models) if state else []
        if base["error"]:
            status = "error"
        elif self.outcome is not None and not base["running"]:
            status = self.outcome.status
        else:
            status = "running" if state else "starting"
        return JobSnapshot(
            run_id=self.run_id, status=status, models=models,
            done=sum(m.done for m in models), total=sum(m.total for m in models),
            elapsed_s=time.monotonic() - self._started, eta_s=state.eta_s() if state else None,
            error=base["error"], cancelling=base["cancelling"] and base["running"])
