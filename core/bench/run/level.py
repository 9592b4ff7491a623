"""One model x concurrency level: its state while it runs (``_Level``, the runner's own) and what the runner
publishes when it ends (``LevelDone``, to ``Runner.level_hooks``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.bench.run.inputs import ModelSpec
from core.bench.run.progress import ModelProgress
from core.bench.run.schedule import Item, LevelLoop


@dataclass
class _Level:
    """One model x concurrency level as it runs, over one turn (blocked) or one per round (interleaved)."""
    spec: ModelSpec
    mp: ModelProgress
    position: int
    level: int
    base: dict
    previous: dict
    todo: list[Item]
    done: list[tuple] = field(default_factory=list)   # (item, rec, done_at, turn_start, turn, turn_position, id)
    cpu_s: float | None = 0.0           # the model process's CPU over the measured windows (None: unknown)
    observer_cpu_s: float | None = 0.0
    stats_after: dict | None = None
    died: BaseException | None = None
    turns: int = 0
    noise: list[dict] = field(default_factory=list)
    energy: list[dict | None] = field(default_factory=list)
    idle_w: float | None = None
    loop: LevelLoop | None = None       # the level's event loop (its connections stay open between turns)


@dataclass(frozen=True)
class LevelDone:
    """What the runner publishes when a level ends (``Runner.level_hooks``): the model, its concurrency level,
    each request of this sitting as (item, record, stored row), warm-ups included, and the level's stored row."""
    spec: ModelSpec
    level: int
    requests: tuple[tuple, ...]
    run_model: dict

