"""The public catalog, remembered when unreachable: offline is a normal state, one notice, no native error
on the terminal, and the failure is remembered for CATALOG_RETRY_S so a page rerun is not slowed by the
runtime's retries (about 4.5 s here)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

from core.config import RUNTIME_DIR
from core.catalog.foundry.loaded import loaded_model_ids
from core.errors import UserError, one_line
from core.catalog.foundry.runtime import CATALOG_HOST, CATALOG_URL, get_manager, quiet_native
from core.catalog.foundry.models import _row, _variants


CATALOG_STATE = RUNTIME_DIR / "foundry-catalog-state.json"
CATALOG_RETRY_S = 600.0  # after a failure, do not ask the public catalog again for 10 minutes
OFFLINE_NOTICE = "Foundry Local public catalog unreachable (offline): showing local models and endpoints"


def _read_catalog_state() -> dict:
    try:
        return json.loads(CATALOG_STATE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _remember_unreachable(reason: str, elapsed_s: float) -> None:
    CATALOG_STATE.parent.mkdir(parents=True, exist_ok=True)
    tmp = CATALOG_STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps({"catalog": CATALOG_URL or "default", "unreachable_at": time.time(), "reason": reason,
                               "elapsed_s": round(elapsed_s, 3)}), encoding="utf-8")
    os.replace(tmp, CATALOG_STATE)


def _forget_unreachable() -> None:
    with contextlib.suppress(OSError):
        CATALOG_STATE.unlink()


def catalog_recently_unreachable() -> str | None:
    """The remembered reason when the public catalog failed less than CATALOG_RETRY_S ago."""
    state = _read_catalog_state()
    if state.get("catalog") != (CATALOG_URL or "default"):
        return None
    at = state.get("unreachable_at")
    if isinstance(at, (int, float)) and 0 <= time.time() - at < CATALOG_RETRY_S:
        return str(state.get("reason") or "unreachable")
    return None


def _dns_ok(host: str, timeout_s: float = 2.0) -> bool:
    """Whether `host` resolves (in a thread, so a hanging resolver costs at most timeout_s)."""
    result: list[bool] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(result and result[0])


def list_public_catalog(refresh: bool = False) -> tuple[list[dict], str | None]:
    """Models of Foundry Local's public catalog, and a one-line notice when it cannot be reached.

    Offline is normal: returns ([], OFFLINE_NOTICE) quietly. A failure is remembered for
    CATALOG_RETRY_S; `refresh=True` skips that memory and the DNS pre-check and asks the runtime.
    """
    if not refresh:
        if catalog_recently_unreachable():
            return [], OFFLINE_NOTICE
        if not _dns_ok(CATALOG_HOST):
            _remember_unreachable(f"cannot resolve {CATALOG_HOST}", 0.0)
            return [], OFFLINE_NOTICE
    loaded = loaded_model_ids()
    start = time.perf_counter()
    try:
        with quiet_native():
            models = _variants(get_manager().catalog.list_models())
            rows = [_row(m, "foundry-catalog", loaded) for m in models]
    except UserError:
        raise
    except Exception as exc:
        _remember_unreachable(one_line(exc), time.perf_counter() - start)
        return [], OFFLINE_NOTICE
    if not rows:  # the runtime returns an empty list after its retries fail
        _remember_unreachable("empty catalog (fetch failed)", time.perf_counter() - start)
        return [], OFFLINE_NOTICE
    _forget_unreachable()
    return sorted(rows, key=lambda r: r["id"]), None

