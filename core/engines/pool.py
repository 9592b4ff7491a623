"""The one registry of the engines this process keeps open, each model in its own process.

Two kinds of entry: a model loaded for interactive use (``kind="model"``, keyed by its id: the Models page),
and an engine ``chat_once`` keeps open between calls (``kind="judge"``, keyed by (backend, model, endpoint,
API key env): the LLM judge). A Foundry Local model runs in a worker process (Foundry Local does not return
memory on unload; ending the worker does); the llama.cpp engine runs its own server process. The sidebar
lists them all, unloads them when idle, and they are closed at exit.
"""
from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Hashable

from core.engines.base import Engine, LoadInfo
from core.engines.factory import make_engine
from core.errors import UserError

LOADABLE_BACKENDS = ("foundry", "llamacpp")
DEFAULT_IDLE_S = 600.0   # unload a model nobody used for this long (10 min; the sidebar changes it)


@dataclass
class _Entry:
    engine: Engine
    kind: str                              # model | judge
    info: LoadInfo | None = None
    used: float = field(default_factory=time.monotonic)
    busy: threading.Lock = field(default_factory=threading.Lock)   # one call at a time on this engine


class LoadedModels:
    def __init__(self) -> None:
        self._entries: dict[Hashable, _Entry] = {}
        self._lock = threading.Lock()

    def touch(self, key: Hashable) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.used = time.monotonic()

    def listing(self) -> list[dict]:
        """Everything kept open: id, backend, process id, resident memory now (MB), idle seconds, kind, key."""
        self._drop_dead()
        now = time.monotonic()
        with self._lock:
            items = list(self._entries.items())
        out = []
        for key, entry in items:
            st = entry.engine.process_stats() or {}
            out.append({"id": key if entry.kind == "model" else key[1], "backend": entry.engine.backend,
                        "pid": entry.engine.pid(), "rss_mb": st.get("rss_mb"), "idle_s": now - entry.used,
                        "kind": entry.kind, "key": key})
        return out

    def unload_idle(self, idle_s: float) -> list[str]:
        """Unload what nobody used for ``idle_s`` seconds (an engine in a call is kept); their ids."""
        now = time.monotonic()
        with self._lock:
            idle = [(key, e) for key, e in self._entries.items() if now - e.used >= idle_s]
        done = []
        for key, entry in idle:
            if self.unload(key, if_idle=True):
                done.append(key if entry.kind == "model" else key[1])
        return done

    def ids(self) -> set[str]:
        """The models loaded for interactive use."""
        self._drop_dead()
        with self._lock:
            return {key for key, e in self._entries.items() if e.kind == "model"}

    def _drop_dead(self) -> None:
        """Forget models whose process is gone (crashed, or killed after a stall): the list tells the
        truth, and the next load starts them afresh."""
        with self._lock:
            dead = [key for key, e in self._entries.items() if e.kind == "model" and not e.engine.alive()]
            engines = [self._entries.pop(key).engine for key in dead]
        for engine in engines:
            engine.close()

    def info(self, model_id: str) -> LoadInfo | None:
        entry = self._entries.get(model_id)
        return entry.info if entry is not None else None

    def load(self, model: dict) -> LoadInfo:
        """Open the engine of a model row (from core.catalog.models.list_models) and keep it."""
        if model["backend"] not in LOADABLE_BACKENDS:
            raise UserError(f"{model['id']}: models served by an endpoint are loaded by their server")
        self._drop_dead()
        with self._lock:
            hit = self._entries.get(model["id"])
            if hit is not None:
                hit.used = time.monotonic()
                return hit.info
            engine = make_engine(model["backend"], model["id"], model_row=model)
            try:
                info = engine.open()
            except UserError:
                engine.close()
                raise
            except Exception as exc:
                engine.close()
                raise UserError(f"model {model['id']} did not load: {' '.join(str(exc).split())}") from exc
            self._entries[model["id"]] = _Entry(engine, "model", info)
            return info

    def open_keyed(self, key: Hashable, factory: Callable[[], Engine], kind: str) -> tuple[Engine, threading.Lock]:
        """The engine kept under ``key``, opened with ``factory()`` the first time; with its call lock."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                engine = factory()
                try:
                    engine.open()
                except BaseException:
                    engine.close()
                    raise
                hit = self._entries[key] = _Entry(engine, kind)
            hit.used = time.monotonic()
            return hit.engine, hit.busy

    def get(self, model_id: str) -> Engine | None:
        with self._lock:
            entry = self._entries.get(model_id)
            if entry is None:
                return None
            entry.used = time.monotonic()
            return entry.engine

    def unload(self, key: Hashable, *, if_idle: bool = False) -> bool:
        """Close the engine kept under ``key`` (with ``if_idle``: unless a call is using it right now)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (if_idle and entry.busy.locked()):
                return False
            del self._entries[key]
        entry.engine.close()
        return True

    def keys(self, kind: str) -> list:
        with self._lock:
            return [key for key, e in self._entries.items() if e.kind == kind]

    def close_all(self, kind: str | None = None) -> None:
        with self._lock:
            keys = [key for key, e in self._entries.items() if kind is None or e.kind == kind]
        for key in keys:
            try:
                self.unload(key)
            except Exception:
                pass


# -- one registry per process, shown in the sidebar, unloaded when idle, closed at exit -----------------
_shared: LoadedModels | None = None
_shared_lock = threading.Lock()
_idle = {"seconds": DEFAULT_IDLE_S}
_reaper: threading.Thread | None = None
_wake = threading.Event()


def shared_pool() -> LoadedModels:
    """The process's registry of open engines (the Models page loads into it, chat_once keeps the judge's
    there, the sidebar lists it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoadedModels()
            atexit.register(_shared.close_all)
        return _shared


def loaded_everywhere() -> list[dict]:
    """Everything this process keeps loaded: id, backend, pid, rss_mb, idle_s, ``kind`` (model | judge), key."""
    return shared_pool().listing()


def unload(row: dict) -> None:
    """Unload one row of ``loaded_everywhere()``."""
    shared_pool().unload(row["key"], if_idle=row.get("kind") == "judge")


def unload_idle(idle_s: float | None = None) -> list[str]:
    """Unload everything idle for ``idle_s`` (default: the chosen idle time); the ids unloaded."""
    return shared_pool().unload_idle(_idle["seconds"] if idle_s is None else idle_s)


def set_idle_timeout(seconds: float) -> None:
    """Unload after this many idle seconds; starts the reaper (a thread that sleeps between checks)."""
    global _reaper
    _idle["seconds"] = max(1.0, float(seconds))
    _wake.set()
    with _shared_lock:
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(target=_reap, name="idle-unloader", daemon=True)
            _reaper.start()


def idle_timeout() -> float:
    return _idle["seconds"]


def _reap() -> None:
    while True:
        _wake.wait(timeout=max(1.0, min(60.0, _idle["seconds"] / 4)))   # a timer, not a busy loop
        _wake.clear()
        try:
            unload_idle()
        except Exception:
            pass
