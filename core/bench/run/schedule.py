"""Scheduling one concurrency level: warm-up, then the measured requests on N concurrent slots.

Knows nothing of storage or progress: it calls ``on_done(item, rec, done_at)`` as each request ends
and ``on_phase(name)`` when the warm-up or the measured window starts. A request is ready to go
(``queued_at``) when its turn comes on one of the N slots; the wait for a free slot is its queue time
(a closed loop: about zero unless the engine's threads are busy). The app's own CPU (observer) is
sampled at the window's start and end, beside the model process's.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from core.engines.base import Engine, EngineDied, RequestOptions, RequestRecord, process_stats

_perf = time.perf_counter
CANCEL_POLL_S = 0.2   # how often the level checks for a cancel (each check wakes this process)


@dataclass
class Item:
    """One request to send: a prompt, its round (0 = warm-up) and whether it is a warm-up."""
    prompt: dict
    round: int
    warmup: bool


@dataclass
class LevelOutcome:
    done: list[tuple[Item, RequestRecord, float]] = field(default_factory=list)   # (item, record, done_at)
    level_start: float = 0.0            # start of the measured window (perf_counter)
    stats_before: dict | None = None    # the model process's stats at the window's start / end
    stats_after: dict | None = None
    observer_before: dict | None = None # the app's own process (this one) at the window's start / end
    observer_after: dict | None = None
    died: BaseException | None = None   # the model's process went away


def plan(prompts: list[dict], rounds: int, warmup: int) -> tuple[list[Item], list[Item]]:
    """Warm-up items (cycling through the prompts) and the measured items (every prompt, every round)."""
    warm = [Item(prompts[i % len(prompts)], 0, True) for i in range(warmup)]
    measured = [Item(p, r, False) for r in range(1, rounds + 1) for p in prompts]
    return warm, measured


class LevelLoop:
    """One event loop for every turn of a model's level (interleaved: one turn per round), so the engine's
    connections stay open between its turns as they do within a blocked level. ``close`` ends the level
    inside the loop (``engine.finish_level``) and closes it."""

    def __init__(self, engine: Engine, concurrency: int):
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        if not engine.is_async:
            self.loop.set_default_executor(ThreadPoolExecutor(max_workers=max(concurrency, 1),
                                                              thread_name_prefix="bench-request"))

    def close(self) -> None:
        async def finish():
            self.engine.finish_level()
        try:
            self.loop.run_until_complete(finish())
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()


def run_level(engine: Engine, warm: list[Item], measured: list[Item], concurrency: int, opts: RequestOptions,
              cancel: threading.Event, on_done: Callable[[Item, RequestRecord, float], None],
              on_phase: Callable[[str], None], out: LevelOutcome | None = None,
              on_window: Callable[[bool], None] | None = None, loop: LevelLoop | None = None) -> LevelOutcome:
    """Run one level (or one turn of it) to its end (or a cancel, or the model's process dying). Never
    raises EngineDied.

    ``out``: the outcome to fill (the caller may read ``level_start`` from ``on_done``). ``on_window(True)``
    just before the measured window, ``on_window(False)`` just after it (the noise and energy meters).
    ``loop``: run in that level's loop and leave the level open (its owner closes it), else in a loop of
    its own, the level finished at the end."""
    out = out if out is not None else LevelOutcome()
    engine.prepare_level(concurrency)

    async def worker(items: list[Item]):
        while items:
            if cancel.is_set():
                return
            item = items.pop(0)
            rec = RequestRecord(queued_at=_perf())   # its turn: ready to go
            await engine.arequest([{"role": "user", "content": item.prompt["text"]}], opts, rec)
            done_at = _perf()
            out.done.append((item, rec, done_at))
            on_done(item, rec, done_at)

    async def watch(tasks):
        while not all(t.done() for t in tasks):
            if cancel.is_set():
                for t in tasks:
                    t.cancel()
                return
            await asyncio.sleep(CANCEL_POLL_S)

    async def phase(items: list[Item], n_workers: int):
        tasks = [asyncio.create_task(worker(items)) for _ in range(n_workers)]
        watcher = asyncio.create_task(watch(tasks))
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            watcher.cancel()
        for r in results:
            if isinstance(r, EngineDied):
                out.died = out.died or r
            elif isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                raise r

    async def main():
        if not engine.is_async and loop is None:
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="bench-request"))
        out.level_start = _perf()
        try:
            if warm:
                on_phase("warmup")
                await phase(list(warm), 1)
            if out.died or cancel.is_set():
                return
            on_phase("running")
            if on_window is not None:
                on_window(True)
            out.stats_before = engine.process_stats()
            out.observer_before = process_stats(os.getpid())
            out.level_start = _perf()
            await phase(list(measured), concurrency)
            out.observer_after = process_stats(os.getpid())
            out.stats_after = engine.process_stats()
            if on_window is not None:
                on_window(False)
        finally:
            if loop is None:
                engine.finish_level()

    if loop is None:
        asyncio.run(main())
    else:
        loop.loop.run_until_complete(main())
    return out
