"""Which Foundry Local models this process has loaded: the one thing the catalog and the worker share.

Worker handles (``core.engines.foundry_worker.FoundryWorker``) add themselves here when they start;
the catalog reads it to mark models "loaded" in its listing. Neither imports the other for it.
"""
from __future__ import annotations

import weakref

_live: "weakref.WeakSet" = weakref.WeakSet()


def track(worker) -> None:
    """Remember a live worker handle (anything with ``model_id``, ``loaded`` and ``alive``)."""
    _live.add(worker)


def live_workers() -> list:
    return list(_live)


def loaded_model_ids() -> set[str]:
    """Model ids loaded by the live workers of this process."""
    return {w.model_id for w in list(_live) if w.loaded and w.alive}


def untrack(worker) -> None:
    _live.discard(worker)
