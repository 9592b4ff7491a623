"""Models loaded for interactive use (Models page): one Foundry Local worker process per model.

Loading in a worker keeps the app's own process small (Foundry Local does not return memory on
unload), and unloading ends the worker, which returns its memory to the system.
"""
from __future__ import annotations

import threading

from core.errors import UserError


class LoadedModels:
    def __init__(self) -> None:
        self._workers: dict[str, object] = {}
        self._info: dict[str, dict] = {}
        self._lock = threading.Lock()

    def ids(self) -> set[str]:
        with self._lock:
            return {k for k, w in self._workers.items() if getattr(w, "alive", lambda: True)()}

    def info(self, model_id: str) -> dict | None:
        return self._info.get(model_id)

    def load(self, model_id: str) -> dict:
        from core.foundry_worker import FoundryWorker

        with self._lock:
            if model_id in self._workers:
                return self._info[model_id]
            worker = FoundryWorker(model_id)
            try:
                worker.start()
                info = worker.load()
            except UserError:
                worker.close()
                raise
            except Exception as exc:
                worker.close()
                raise UserError(f"model {model_id} did not load: {' '.join(str(exc).split())}") from exc
            self._workers[model_id] = worker
            self._info[model_id] = info
            return info

    def get(self, model_id: str):
        with self._lock:
            return self._workers.get(model_id)

    def unload(self, model_id: str) -> None:
        with self._lock:
            worker = self._workers.pop(model_id, None)
            self._info.pop(model_id, None)
        if worker is not None:
            worker.close()

    def close_all(self) -> None:
        for model_id in list(self._workers):
            self.unload(model_id)
