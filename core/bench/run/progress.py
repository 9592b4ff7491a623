"""Progress of a run: an interface (``on_start / on_update / on_complete``) that knows nothing of the UI.

The CLI prints it, the page draws it. ``Tracker`` keeps a run's ``RunProgress`` (elapsed, ETA per
model) and forwards each change to the ``Progress`` it was given; the runner only says what happened.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

_perf = time.perf_counter


@dataclass
class ModelProgress:
    model: str
    backend: str
    label: str
    phase: str = "waiting"           # waiting | loading | warmup | running | done | failed | interrupted
    concurrency: int | None = None
    done: int = 0                    # requests finished (warm-ups included), all levels
    total: int = 0
    failed: int = 0
    error: str | None = None
    started_at: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None


@dataclass
class RunProgress:
    run_id: str
    models: list[ModelProgress]
    started_at: float
    status: str = "running"

    @property
    def done(self) -> int:
        return sum(m.done for m in self.models)

    @property
    def total(self) -> int:
        return sum(m.total for m in self.models)

    def eta_s(self) -> float | None:
        done_models = [m for m in self.models if m.done and m.elapsed_s > 0]
        if not done_models:
            return None
        rate = sum(m.elapsed_s for m in done_models) / sum(m.done for m in done_models)
        return sum((m.total - m.done) * rate for m in self.models if m.phase not in ("done", "failed", "interrupted"))


class Progress:
    """Receives progress; the CLI prints it, the page draws it. Implementations must be cheap."""

    def on_start(self, progress: RunProgress) -> None: ...

    def on_update(self, progress: RunProgress, model: ModelProgress) -> None: ...

    def on_complete(self, outcome: "RunOutcome") -> None: ...


@dataclass
class RunOutcome:
    run_id: str
    status: str                      # completed | interrupted
    results: list[dict]
    reason: str | None = None        # why interrupted


class Tracker:
    """Keeps ``state`` (a RunProgress) current and tells ``progress`` about every change."""

    def __init__(self, state: RunProgress, progress: Progress | None = None):
        self.state = state
        self.progress = progress or Progress()

    def start(self) -> None:
        self.progress.on_start(self.state)

    def tick(self, mp: ModelProgress) -> None:
        """One request of ``mp`` finished (``mp.done`` already counted)."""
        now = _perf()
        mp.elapsed_s = now - (mp.started_at or now)
        if mp.done:
            mp.eta_s = mp.elapsed_s / mp.done * (mp.total - mp.done)
        self.progress.on_update(self.state, mp)

    def phase(self, mp: ModelProgress, phase: str | None = None, error: str | None = None) -> None:
        """``mp`` entered ``phase`` (or only its figures changed)."""
        if phase is not None:
            mp.phase = phase
            if phase == "loading":
                mp.started_at = _perf()
        if error is not None:
            mp.error = error
        if mp.started_at is not None:
            mp.elapsed_s = _perf() - mp.started_at
        if mp.phase in ("done", "failed", "interrupted"):
            mp.eta_s = 0.0 if mp.phase == "done" else None
        self.progress.on_update(self.state, mp)

    def settle(self, status: str) -> None:
        """The run ended (``completed`` or ``interrupted``): models still in flight are interrupted."""
        self.state.status = status
        for mp in self.state.models:
            if mp.phase in ("waiting", "loading", "warmup", "running") and status == "interrupted":
                mp.phase = "interrupted"

    def complete(self, outcome: RunOutcome) -> None:
        self.progress.on_complete(outcome)
