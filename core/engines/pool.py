"""Models loaded for interactive use (Models page), each in its own process.

A Foundry Local model runs in a worker process (Foundry Local does not return memory on unload;
ending the worker does); the llama.cpp engine runs its own server process. Both are benchmark
engines (`core.engines`), opened once and kept until unloaded.
"""
from __future__ import annotations

import atexit
import threading
import time

from core.engines.base import Engine, LoadInfo
from core.engines.chat import close_open_engine, open_engines
from core.engines.factory import make_engine
from core.errors import UserError

LOADABLE_BACKENDS = ("foundry", "llamacpp")
DEFAULT_IDLE_S = 600.0   # unload a model nobody used for this long (10 min; the sidebar changes it)


class LoadedModels:
    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._info: dict[str, LoadInfo] = {}
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, model_id: str) -> None:
        self._used[model_id] = time.monotonic()

    def listing(self) -> list[dict]:
        """The loaded models: id, backend, process id, resident memory now (MB), idle seconds."""
        self._drop_dead()
        now = time.monotonic()
        with self._lock:
            items = list(self._engines.items())
        out = []
        for model_id, engine in items:
            st = engine.process_stats() or {}
            out.append({"id": model_id, "backend": engine.backend, "pid": engine.pid(), "rss_mb": st.get("rss_mb"),
                        "idle_s": now - self._used.get(model_id, now)})
        return out

    def unload_idle(self, idle_s: float) -> list[str]:
        """Unload the models nobody used for ``idle_s`` seconds; their ids."""
        now = time.monotonic()
        idle = [m for m, t in list(self._used.items()) if now - t >= idle_s and m in self._engines]
        for model_id in idle:
            self.unload(model_id)
        return idle

    def ids(self) -> set[str]:
        self._drop_dead()
        with self._lock:
            return set(self._engines)

    def _drop_dead(self) -> None:
        """Forget models whose process is gone (crashed, or killed after a stall): the list tells the
        truth, and the next load starts them afresh."""
        with self._lock:
            dead = [model_id for model_id, engine in self._engines.items() if not engine.alive()]
            engines = [self._engines.pop(model_id) for model_id in dead]
            for model_id in dead:
                self._info.pop(model_id, None)
        for engine in engines:
            engine.close()

    def info(self, model_id: str) -> LoadInfo | None:
        return self._info.get(model_id)

    def load(self, model: dict) -> LoadInfo:
        """Open the engine of a model row (from core.catalog.models.list_models) and keep it."""
        if model["backend"] not in LOADABLE_BACKENDS:
            raise UserError(f"{model['id']}: models served by an endpoint are loaded by their server")
        self._drop_dead()
        with self._lock:
            self.touch(model["id"])
            if model["id"] in self._engines:
                return self._info[model["id"]]
            engine = make_engine(model["backend"], model["id"], model_row=model)
            try:
                info = engine.open()
            except UserError:
                engine.close()
                raise
            except Exception as exc:
                engine.close()
                raise UserError(f"model {model['id']} did not load: {' '.join(str(exc).split())}") from exc
            self._engines[model["id"]] = engine
            self._info[model["id"]] = info
            return info

    def get(self, model_id: str) -> Engine | None:
        with self._lock:
            if model_id in self._engines:
                self.touch(model_id)
            return self._engines.get(model_id)

    def unload(self, model_id: str) -> None:
        with self._lock:
            engine = self._engines.pop(model_id, None)
            self._info.pop(model_id, None)
            self._used.pop(model_id, None)
        if engine is not None:
            engine.close()

    def close_all(self) -> None:
        for model_id in list(self._engines):
            self.unload(model_id)


# -- one pool per process, shown in the sidebar, unloaded when idle, closed at exit --------------------
_shared: LoadedModels | None = None
_shared_lock = threading.Lock()
_idle = {"seconds": DEFAULT_IDLE_S}
_reaper: threading.Thread | None = None
_wake = threading.Event()


def shared_pool() -> LoadedModels:
    """The process's pool of loaded models (the Models page loads into it, the sidebar lists it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoadedModels()
            atexit.register(_shared.close_all)
        return _shared


def loaded_everywhere() -> list[dict]:
    """Everything this process keeps loaded: the pool's models and the judge's (chat_once) engines, with
    id, backend, pid, rss_mb, idle_s and ``kind`` (model | judge)."""
    rows = [dict(r, kind="model") for r in shared_pool().listing()]
    for item in open_engines():
        engine = item["engine"]
        st = engine.process_stats() or {}
        rows.append({"id": item["key"][1], "backend": item["key"][0], "pid": engine.pid(), "rss_mb": st.get("rss_mb"),
                     "idle_s": item["idle_s"], "kind": "judge", "key": item["key"]})
    return rows


def unload(row: dict) -> None:
    """Unload one row of ``loaded_everywhere()``."""
    if row.get("kind") == "judge":
        close_open_engine(row["key"])
    else:
        shared_pool().unload(row["id"])


def unload_idle(idle_s: float | None = None) -> list[str]:
    """Unload everything idle for ``idle_s`` (default: the chosen idle time); the ids unloaded."""
    idle_s = _idle["seconds"] if idle_s is None else idle_s
    done = shared_pool().unload_idle(idle_s)
    for item in open_engines():
        if item["idle_s"] >= idle_s:
            close_open_engine(item["key"])
            done.append(item["key"][1])
    return done


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
