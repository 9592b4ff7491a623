"""Foundry Local's runtime in this process (foundry-local-sdk 2.2.x): the one FoundryLocalManager (`get_manager()`),
with its model cache (where LOCAL-catalog registrations persist, in `foundry.local.modelinfo.json`), app data
and logs under data/runtime/foundry/ (override with `SLM_FOUNDRY_DIR`); the native output diverted to a log
(`quiet_native()`).

Model loading and chat run in worker processes (core.engines.foundry_worker), not here, so the app's own
process never holds model memory.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from core.config import APP_NAME, RUNTIME_DIR
from core.errors import UserError, one_line


NATIVE_LOG = RUNTIME_DIR / "foundry-native.log"
# The public catalog: the runtime's default (its host seen in the runtime's own log), or
# SLM_FOUNDRY_CATALOG_URL (must end in /asset-gallery/v1.0/models; tests point it at a closed local port).
# A failed DNS lookup of its host is a fast, quiet way to know we are offline before the runtime spends
# seconds retrying.
CATALOG_URL = os.environ.get("SLM_FOUNDRY_CATALOG_URL", "").strip() or None
CATALOG_HOST = urlparse(CATALOG_URL).hostname if CATALOG_URL else "api.catalog.azureml.ms"
CPU_EP = "CPUExecutionProvider"


def foundry_dir() -> Path:
    """Where the runtime keeps its model cache (and LOCAL registrations), app data and logs."""
    value = os.environ.get("SLM_FOUNDRY_DIR", "").strip()
    return Path(value).expanduser().resolve() if value else RUNTIME_DIR / "foundry"


# ---------------------------------------------------------------------------------------------------
# Native output
# ---------------------------------------------------------------------------------------------------

_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_fds: tuple[int, int] | None = None
_stderr_diverted = False


def _divert_stderr_for_good() -> None:
    """Once per process: fd 2 to the native log for good, and Python's stderr to a copy of the old fd 2.

    The runtime logs through an asynchronous logger: its worker thread may write an error to fd 2 a
    moment after the call that caused it has returned, when a per-call redirection is already undone
    (seen in CI: the offline catalog error reached the terminal about half the time). So in a process
    whose stderr is the real one (the CLI, the app), fd 2 stays on the log, and everything Python
    writes (our one-line errors, tracebacks, log handlers) goes on to the terminal as before. Where
    someone else has replaced sys.stderr (pytest's capture), nothing changes: quiet_native alone.
    Caller holds _quiet_lock.
    """
    global _stderr_diverted
    if _stderr_diverted:
        return
    _stderr_diverted = True
    old = sys.stderr
    if old is None or old is not sys.__stderr__:
        return
    try:
        if old.fileno() != 2:
            return
        old.flush()
        terminal = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return
    new = open(terminal, "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
               errors=getattr(old, "errors", None) or "backslashreplace", closefd=True)
    log_fd = os.open(NATIVE_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log_fd, 2)
    finally:
        os.close(log_fd)
    sys.stderr = new
    import logging

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:  # handlers made earlier (Streamlit's) hold the old object
        for handler in lg.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Send OS-level stdout/stderr (fd 1 and 2) to data/runtime/foundry-native.log while native code runs.

    The native runtime writes its errors straight to fd 2 (for example when the catalog is offline);
    they belong in a log, not on the user's terminal or page. Re-entrant and shared between threads:
    the first caller redirects, the last one restores. The first use in a process also moves fd 2 to
    the log for good where that is safe (see _divert_stderr_for_good).
    """
    global _quiet_depth, _saved_fds
    with _quiet_lock:
        if _quiet_depth == 0:
            NATIVE_LOG.parent.mkdir(parents=True, exist_ok=True)
            _divert_stderr_for_good()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            log_fd = os.open(NATIVE_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                _saved_fds = (os.dup(1), os.dup(2))
                os.dup2(log_fd, 1)
                os.dup2(log_fd, 2)
            finally:
                os.close(log_fd)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_fds is not None:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                out_fd, err_fd = _saved_fds
                os.dup2(out_fd, 1)
                os.dup2(err_fd, 2)
                os.close(out_fd)
                os.close(err_fd)
                _saved_fds = None


# ---------------------------------------------------------------------------------------------------
# Manager
# ---------------------------------------------------------------------------------------------------

_manager_lock = threading.Lock()


def get_manager():
    """The initialized FoundryLocalManager of this process (created on first use)."""
    with _manager_lock:
        from foundry_local_sdk import Configuration, FoundryLocalManager, LogLevel

        if FoundryLocalManager.instance is not None:
            return FoundryLocalManager.instance
        base = foundry_dir()
        for sub in ("models", "app", "logs"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        config = Configuration(
            app_name=APP_NAME,
            app_data_dir=str(base / "app"),
            model_cache_dir=str(base / "models"),
            logs_dir=str(base / "logs"),
            log_level=LogLevel.ERROR,
            disable_nonessential_telemetry=True,
            catalog_urls=[(CATALOG_URL, None)] if CATALOG_URL else None,
        )
        try:
            with quiet_native():
                FoundryLocalManager.initialize(config)
        except Exception as exc:  # a broken install or an unwritable runtime folder
            raise UserError(f"Foundry Local could not start: {one_line(exc)}") from exc
        return FoundryLocalManager.instance


def _local_catalog():
    from foundry_local_sdk import CatalogType

    return get_manager().get_catalog(CatalogType.LOCAL)


def sdk_versions() -> dict:
    """Versions of the SDK and its native runtime packages (recorded with benchmark runs)."""
    from importlib import metadata

    out = {}
    for dist in ("foundry-local-sdk", "onnxruntime", "onnxruntime-genai-core"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out

