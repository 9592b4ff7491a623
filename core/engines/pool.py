"""Models loaded for interactive use (Models page), each in its own process.

A Foundry Local model runs in a worker process (Foundry Local does not return memory on unload;
ending the worker does); the llama.cpp engine runs its own server process. Both are benchmark
engines (`core.engines`), opened once and kept until unloaded.
"""
from __future__ import annotations

import threading

from core.engines import Engine, LoadInfo, make_engine
from core.errors import UserError

LOADABLE_BACKENDS = ("foundry", "llamacpp")


class LoadedModels:
    def __init__(self) -> None:
        self._engines: dict[str, Engine] = {}
        self._info: dict[str, LoadInfo] = {}
        self._lock = threading.Lock()

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
            return self._engines.get(model_id)

    def unload(self, model_id: str) -> None:
        with self._lock:
            engine = self._engines.pop(model_id, None)
            self._info.pop(model_id, None)
        if engine is not None:
            engine.close()

    def close_all(self) -> None:
        for model_id in list(self._engines):
            self.unload(model_id)
