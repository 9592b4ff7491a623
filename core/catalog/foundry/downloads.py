"""Online operations: `download_model()`, `execution_providers()`, `register_execution_providers()`."""
from __future__ import annotations

import threading
from typing import Callable

from core.errors import UserError, one_line
from core.catalog.foundry.runtime import CATALOG_HOST, CPU_EP, get_manager, quiet_native
from core.catalog.foundry.catalog import _dns_ok, _remember_unreachable, catalog_recently_unreachable


def _require_online(what: str) -> None:
    reason = catalog_recently_unreachable()
    if reason is None and not _dns_ok(CATALOG_HOST):
        reason = f"cannot resolve {CATALOG_HOST}"
        _remember_unreachable(reason, 0.0)
    if reason is not None:
        raise UserError(f"{what} needs the internet, and Foundry Local's catalog is unreachable ({reason})")


def download_model(model_id: str, progress: Callable[[float], None] | None = None,
                   cancel: threading.Event | None = None) -> bool:
    """Download a public-catalog model into the cache. True when done, False when cancelled."""
    _require_online(f"downloading {model_id}")
    with quiet_native():
        catalog = get_manager().catalog
        model = catalog.get_model_variant(model_id) or catalog.get_model(model_id)
    if model is None:
        raise UserError(f"unknown model in Foundry Local's public catalog: {model_id}")
    try:
        with quiet_native():
            model.download(progress_callback=progress, cancel_event=cancel)
    except Exception as exc:
        if cancel is not None and cancel.is_set():
            return False
        raise UserError(f"download of {model_id} failed: {one_line(exc)}") from exc
    return not (cancel is not None and cancel.is_set())


# ---------------------------------------------------------------------------------------------------
# Execution providers
# ---------------------------------------------------------------------------------------------------

def execution_providers() -> list[dict]:
    """Execution providers: the built-in CPU one, then those the runtime discovers on this machine."""
    with quiet_native():
        discovered = get_manager().discover_eps()
    rows = [{"name": CPU_EP, "registered": True, "builtin": True}]
    for ep in discovered:
        if ep.name != CPU_EP:
            rows.append({"name": ep.name, "registered": bool(ep.is_registered), "builtin": False})
    return rows


def register_execution_providers(progress: Callable[[str, float], None] | None = None,
                                 names: list[str] | None = None) -> dict:
    """Download and register the discoverable execution providers (online only)."""
    _require_online("downloading execution providers")
    try:
        with quiet_native():
            result = get_manager().download_and_register_eps(names=names, progress_callback=progress)
    except Exception as exc:
        raise UserError(f"execution provider download failed: {one_line(exc)}") from exc
    if not result.success:
        raise UserError(f"execution providers not registered: {', '.join(result.failed_eps)}")
    return {"registered": list(result.registered_eps), "failed": list(result.failed_eps), "status": result.status}

