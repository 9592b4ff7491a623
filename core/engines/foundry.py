"""Foundry Local engine: the model runs in its own worker process (``core.engines.foundry_worker``).

The worker stamps ``time.perf_counter()`` itself (CLOCK_MONOTONIC, comparable across processes), so
the pipe between the processes is not inside any timer. One fresh ChatSession per request is the
worker's job; token counts come from the runtime's usage. Memory and CPU are the worker's alone.
"""
from __future__ import annotations

import threading
import time
from importlib import metadata

from core.engines import proc
from core.engines.base import Engine, EngineDied, LoadInfo, RequestOptions, RequestRecord
from core.errors import UserError

_perf = time.perf_counter
RUNTIME_PACKAGES = ("foundry-local-sdk", "onnxruntime", "onnxruntime-genai-core")


def _versions(names) -> dict:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class FoundryEngine(Engine):
    backend = "foundry"

    def __init__(self, model: str, *, model_row: dict | None = None, worker_factory=None,
                 context_length: int | None = None):
        super().__init__(model)
        self.model_row = model_row or {}
        # a run setting: load the model with its KV cache sized for this many tokens (genai max_length),
        # through a run folder registered as <name>-ctx<N> (core.catalog.foundry.context_variant)
        self.context_length = context_length
        self.load_id = model
        self._factory = worker_factory
        self.worker = None
        self._lock = threading.Lock()
        self._concurrent = False
        self._pid: int | None = None

    @property
    def engine_wait(self) -> str | None:
        return None if self._concurrent else "measured"

    def open(self) -> LoadInfo:
        if self._factory is None:
            from core.engines.foundry_worker import FoundryWorker
            self._factory = FoundryWorker
        if self.context_length:
            from core.catalog.foundry import context_variant, get_local_model
            path = self.model_row.get("path")
            if not path:
                found = get_local_model(self.model)
                path = found.get_path() if found is not None else None
            if not path:
                raise UserError(f"cannot set the context of {self.model}: its folder is not known")
            self.load_id = context_variant(self.model, path, self.context_length)
        self.worker = self._factory(self.load_id)
        self.worker.start()
        info = self.worker.load()
        self._concurrent = bool(getattr(self.worker, "supports_concurrency", False))
        return LoadInfo(
            load_s=info.get("load_s"), rss_before_mb=info.get("rss_before_mb"),
            rss_after_load_mb=info.get("rss_after_load_mb"),
            model_version=info.get("model_version") or self.model_row.get("version"),
            execution_provider=info.get("execution_provider") or self.model_row.get("execution_provider"),
            pid=self.pid(), runtime=dict(_versions(RUNTIME_PACKAGES), max_length=self.context_length),
            notes=[f"context: max_length {self.context_length} (run setting, loaded as {self.load_id})"]
            if self.context_length else [],
        )

    def pid(self) -> int | None:
        if self.worker is None:
            return self._pid
        pid = getattr(self.worker, "pid", None)
        if pid:
            self._pid = pid   # kept: the worker forgets its process once closed
        return pid or self._pid

    def alive(self) -> bool:
        return proc.alive(self.pid())

    def request_sync(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        if self._concurrent:
            self._request(messages, opts, rec)
        else:  # one request at a time: the wait for the worker is its own number (engine wait), before `start`
            with self._lock:
                rec.engine_ready_at = _perf()
                self._request(messages, opts, rec)

    def _request(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        if self.worker is None:
            raise EngineDied("worker not started")
        events = None
        try:
            events = self.worker.chat(messages, temperature=opts.temperature, max_tokens=opts.max_tokens,
                                      seed=opts.seed, timeout_s=opts.timeout_s,
                                      **({"grammar": opts.grammar} if opts.grammar else {}))
            for ev in events:
                kind, t = ev.get("type"), ev.get("t")
                if kind == "start":
                    rec.start = t
                elif kind == "chunk":
                    text = ev.get("text") or ""
                    if text:
                        if rec.first_token_at is None:
                            rec.first_token_at = t
                        rec.chunk_times.append(t)
                        rec.text_parts.append(text)
                    if rec.start is not None and t is not None and t - rec.start > opts.timeout_s:
                        rec.fail(f"timed out after {opts.timeout_s:g} s (stalled after {len(rec.chunk_times)} chunks)")
                        break
                elif kind == "done":
                    rec.end = t
                    rec.finish_reason = ev.get("finish_reason")
                    rec.prompt_tokens = ev.get("prompt_tokens")
                    rec.usage_completion_tokens = ev.get("completion_tokens")
                    break
                elif kind == "error":
                    if ev.get("timed_out"):   # a stall: this request fails; a killed worker ends the model
                        rec.fail(ev.get("error") or "timed out")
                        break
                    if not self.alive():
                        raise EngineDied(f"worker process {self.pid()} exited ({ev.get('error') or 'no reason'})")
                    rec.fail(ev.get("error") or "worker error")
                    break
        except EngineDied:
            raise
        except UserError as exc:
            if not self.alive():
                raise EngineDied(f"worker process {self.pid()} exited ({exc.one_line()})") from exc
            rec.fail(exc.one_line())
        except Exception as exc:  # pipe broken, worker gone
            if not self.alive():
                raise EngineDied(f"worker process {self.pid()} exited ({type(exc).__name__})") from exc
            rec.fail(f"{type(exc).__name__}: {exc}")
        finally:
            close = getattr(events, "close", None)
            if close:
                try:
                    close()
                except Exception:
                    pass
        if rec.error is None and rec.finish_reason is None:
            if not self.alive():
                raise EngineDied(f"worker process {self.pid()} exited mid-request")
            rec.fail("stream ended without a finish reason (truncated)")

    def process_stats(self) -> dict | None:
        pid = self.pid() if self.worker is not None else None
        return proc.process_stats(pid) if pid else None

    def close(self) -> None:
        if self.worker is not None:
            try:
                self.worker.close()
            except Exception:
                pass
            self.worker = None
