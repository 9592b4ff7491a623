"""A long call (a judge run, ...) in a background thread, polled by a page: threads never touch the UI.

`job = Job(fn, **kwargs).start()` calls `fn(**kwargs, progress=job.progress, cancel=job.cancel_event)`;
`snapshot()` gives done/total/what, the result or a one-line error.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from core.errors import UserError


class Job:
    def __init__(self, fn: Callable[..., Any], **kwargs: Any) -> None:
        self.cancel_event = threading.Event()
        self._fn, self._kwargs = fn, kwargs
        self._lock = threading.Lock()
        self._state = {"done": 0, "total": 0, "what": "starting", "result": None, "error": None}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Job":
        self._thread.start()
        return self

    def progress(self, done: int, total: int, what: str) -> None:
        with self._lock:
            self._state.update(done=done, total=total, what=what)

    def _run(self) -> None:
        try:
            result = self._fn(**self._kwargs, progress=self.progress, cancel=self.cancel_event)
            with self._lock:
                self._state["result"] = result
        except UserError as exc:
            with self._lock:
                self._state["error"] = exc.one_line()
        except Exception as exc:  # shown as one line, never a traceback
            with self._lock:
                self._state["error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> dict:
        with self._lock:
            return {**self._state, "running": self.running, "cancelling": self.cancel_event.is_set()}

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
