"""Foundry Local, in-process (foundry-local-sdk 2.2.x): the one place that talks to the SDK.

- `get_manager()`: the process-wide FoundryLocalManager, with its model cache (where LOCAL-catalog
  registrations persist, in `foundry.local.modelinfo.json`), app data and logs under
  data/runtime/foundry/ (override with `SLM_FOUNDRY_DIR`).
- `list_local_models()` / `list_public_catalog()`: rows of one shape (MODEL_KEYS) for the model list.
  Offline, the public catalog is a normal state: one notice, no native error on the terminal, and the
  failure is remembered for CATALOG_RETRY_S so a page rerun is not slowed by the runtime's retries
  (about 4.5 s here).
- `validate_model_folder()` / `register_local_model()`: bring your own ONNX Runtime GenAI folder.
- `execution_providers()` / `register_execution_providers()` / `download_model()`: online operations.

Model loading and chat run in worker processes (core.engines.foundry_worker), not here, so the app's own
process never holds model memory.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlparse

from core.config import APP_NAME, RUNTIME_DIR, limit
from core.catalog.loaded import loaded_model_ids
from core.errors import UserError, one_line  # noqa: F401  (one_line: the workers import it from here)
from core.output import parse_json_strict, term_text

NATIVE_LOG = RUNTIME_DIR / "foundry-native.log"
CATALOG_STATE = RUNTIME_DIR / "foundry-catalog-state.json"
CATALOG_RETRY_S = 600.0  # after a failure, do not ask the public catalog again for 10 minutes
# The public catalog: the runtime's default (its host seen in the runtime's own log), or
# SLM_FOUNDRY_CATALOG_URL (must end in /asset-gallery/v1.0/models; tests point it at a closed local port).
# A failed DNS lookup of its host is a fast, quiet way to know we are offline before the runtime spends
# seconds retrying.
CATALOG_URL = os.environ.get("SLM_FOUNDRY_CATALOG_URL", "").strip() or None
CATALOG_HOST = urlparse(CATALOG_URL).hostname if CATALOG_URL else "api.catalog.azureml.ms"
OFFLINE_NOTICE = "Foundry Local public catalog unreachable (offline): showing local models and endpoints"
CPU_EP = "CPUExecutionProvider"

MODEL_KEYS = (
    "id", "alias", "display_name", "source", "backend", "version", "disk_mb", "license", "publisher",
    "parameters", "quantization", "context_length", "execution_provider", "capabilities", "cached",
    "loaded", "path",
)
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*:[0-9]+$")


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


# ---------------------------------------------------------------------------------------------------
# Model rows
# ---------------------------------------------------------------------------------------------------

def folder_size_mb(path: str | os.PathLike | None) -> float | None:
    """Size of the files under `path` in MB (1024*1024 bytes), hard links counted once; None if absent."""
    if not path:
        return None
    root = Path(path)
    if not root.exists():
        return None
    if root.is_file():
        return round(root.stat().st_size / 1048576, 1)
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
    return round(total / 1048576, 1)


def _genai_provider(path: str | None) -> str | None:
    """Execution provider a GenAI folder asks for (genai_config.json provider_options), CPU when none."""
    if not path:
        return None
    try:
        config = json.loads((Path(path) / "genai_config.json").read_text(encoding="utf-8"))
        options = config["model"]["decoder"]["session_options"].get("provider_options") or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    for entry in options:
        if isinstance(entry, dict) and entry:
            name = next(iter(entry))
            return {"cuda": "CUDAExecutionProvider", "dml": "DmlExecutionProvider",
                    "webgpu": "WebGpuExecutionProvider"}.get(name.lower(), name)
    return CPU_EP


def _row(model, source: str, loaded_ids: set[str]) -> dict:
    info = model.info
    cached = bool(model.is_cached)
    path = None
    if cached:
        with contextlib.suppress(Exception):
            path = model.get_path() or None
    disk_mb = folder_size_mb(path) if path else None
    if disk_mb is None and info.file_size_mb is not None:
        disk_mb = float(info.file_size_mb)
    runtime = info.runtime
    provider = (runtime.execution_provider if runtime else "") or info.get_string_property("execution_provider")
    provider = provider or _genai_provider(path)
    capabilities = [c.strip() for c in (info.capabilities or "").split(",") if c.strip()]
    if not capabilities and info.task:
        capabilities = [info.task]
    if info.supports_tool_calling and "tools" not in capabilities:
        capabilities.append("tools")
    return {
        "id": info.id,
        "alias": info.alias,
        "display_name": info.display_name or info.alias or info.id,
        "source": source,
        "backend": "foundry",
        "version": info.version,
        "disk_mb": disk_mb,
        "license": info.license,
        "publisher": info.publisher,
        "parameters": info.get_string_property("parameters"),
        "quantization": info.get_string_property("quantization"),
        "context_length": info.context_length or genai_context(path).get("context_length"),
        "execution_provider": provider,
        "capabilities": capabilities,
        "cached": cached,
        "loaded": bool(info.id in loaded_ids or model.is_loaded),
        "path": path,
    }


def _variants(models) -> list:
    out, seen = [], set()
    for model in models:
        try:
            variants = model.variants or [model]
        except Exception:
            variants = [model]
        for variant in variants:
            key = variant.id
            if key not in seen:
                seen.add(key)
                out.append(variant)
    return out


def list_local_models() -> list[dict]:
    """Every model registered in Foundry Local's LOCAL catalog (the starter pack, user folders)."""
    loaded = loaded_model_ids()
    with quiet_native():
        models = _variants(_local_catalog().list_models())
        rows = [_row(m, "foundry-local", loaded) for m in models]
    return sorted((r for r in rows if not CONTEXT_VARIANT.search(r["id"])), key=lambda r: r["id"])


def get_local_model(model_id: str):
    """The IModel registered under `model_id` in the LOCAL catalog, or None."""
    with quiet_native():
        return _local_catalog().get_model_variant(model_id)


# ---------------------------------------------------------------------------------------------------
# Public catalog (online only)
# ---------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------
# Bring your own model
# ---------------------------------------------------------------------------------------------------

def _model_files(config: dict) -> list[str]:
    """Every "filename" the genai_config.json model section names (decoder, embedding, vision, ...)."""
    names: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "filename" and isinstance(value, str):
                    names.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config.get("model", {}))
    return names


def inside_folder(folder: Path, name: str) -> bool:
    """A file name from a folder's own config names a file inside that folder: relative, no '..', no drive
    or backslash, and not a link that resolves outside it."""
    if not name or "\x00" in name or "\\" in name or ":" in name:
        return False
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        return False
    root = folder.resolve()
    return (root / rel).resolve().is_relative_to(root)


def has_chat_template(folder: Path) -> bool:
    """A chat template where the runtime finds one: tokenizer_config.json or chat_template.jinja."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file() and jinja.read_text(encoding="utf-8", errors="replace").strip():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    template = config.get("chat_template") if isinstance(config, dict) else None
    return bool(template if isinstance(template, str) else template)


def validate_model_folder(path: str | os.PathLike) -> list[str]:
    """What keeps `path` from being a usable ONNX Runtime GenAI chat model folder ([] when nothing)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return [f"not a folder: {folder}"]
    problems: list[str] = []
    config_path = folder / "genai_config.json"
    if not config_path.is_file():
        problems.append("missing genai_config.json")
    else:
        try:
            config = parse_json_strict(config_path.read_text(encoding="utf-8"), limit("SLM_MAX_JSON_DEPTH"))
            if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
                raise ValueError("no 'model' section")
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            problems.append(f"genai_config.json cannot be parsed ({one_line(exc, 120)})")
        else:
            files = _model_files(config) or ["model.onnx"]
            for name in files:
                if not inside_folder(folder, name):
                    problems.append(f"model file name {term_text(name)[:80]!r} in genai_config.json is not a file "
                                    "inside the folder (absolute, or leaving it with ..)")
                elif not (folder / name).is_file():
                    problems.append(f"missing model file {term_text(name)[:80]} (named in genai_config.json)")
    if not (folder / "tokenizer.json").is_file():
        problems.append("missing tokenizer (tokenizer.json)")
    if not has_chat_template(folder):
        problems.append("missing chat template (chat_template in tokenizer_config.json or chat_template.jinja)")
    return problems


def register_local_model(path: str | os.PathLike, model_id: str, *, display_name: str, publisher: str,
                         license: str, parameters: str | None = None, quantization: str | None = None,
                         execution_provider: str | None = CPU_EP, replace: bool = False) -> str:
    """Register an ONNX Runtime GenAI folder in the LOCAL catalog under `model_id` ("name:version").

    Validates the folder first (UserError naming what is missing). Idempotent: an id already
    registered for the same folder is reused. An id registered for a DIFFERENT folder is a UserError
    unless `replace` (CLI `register --replace`, the page's confirm box) -- also when that folder is gone,
    so nothing is silently unregistered.
    """
    folder = Path(path).expanduser().resolve()
    problems = validate_model_folder(folder)
    if problems:
        raise UserError(f"cannot register {folder}: {'; '.join(problems)}")
    if not _MODEL_ID.match(model_id):
        raise UserError(f"model id must look like name:version (letters, digits, . _ -), got {model_id!r}")
    from foundry_local_sdk import ModelInfoBuilder

    catalog = _local_catalog()
    with quiet_native():
        existing = catalog.get_model_variant(model_id)
        if existing is not None:
            try:
                current = Path(existing.get_path()).resolve()
            except Exception:
                current = None
            if current == folder:
                return model_id
            if not replace:
                gone = "" if current is not None and current.exists() else " (that folder no longer exists)"
                raise UserError(f"model id {model_id} is already registered for {current}{gone}: "
                                f"use --replace (or tick 'replace' on the Models page) to point it at {folder}")
            catalog.unregister_model(model_id)  # replacing, as asked
        with ModelInfoBuilder() as metadata:
            metadata.set_string_property("task", "chat-completion")
            metadata.set_string_property("display_name", display_name)
            metadata.set_string_property("publisher", publisher)
            metadata.set_string_property("license", license)
            if parameters:
                metadata.set_string_property("parameters", str(parameters))
            if quantization:
                metadata.set_string_property("quantization", quantization)
            if execution_provider:
                metadata.set_string_property("execution_provider", execution_provider)
            try:
                catalog.register_model(model_path=str(folder), model_id=model_id, metadata=metadata)
            except Exception as exc:
                if "already registered" in str(exc):  # another process won the race
                    return model_id
                raise UserError(f"cannot register {model_id}: {one_line(exc)}") from exc
    return model_id


def unregister_local_model(model_id: str) -> bool:
    """Remove a LOCAL registration (the files stay). False when it was not registered."""
    catalog = _local_catalog()
    with quiet_native():
        if catalog.get_model_variant(model_id) is None:
            return False
        catalog.unregister_model(model_id)
    return True


# ---------------------------------------------------------------------------------------------------
# Context window and the context a run loads a model with
# ---------------------------------------------------------------------------------------------------

CONTEXT_VARIANT = re.compile(r"-ctx[0-9]+:[0-9]+$")   # a run's own registration of a model at a context length
CONTEXTS_DIR = RUNTIME_DIR / "contexts"


def genai_context(path: str | os.PathLike | None) -> dict:
    """What a GenAI folder's genai_config.json says about context: {"context_length" (the window),
    "max_length" (what the runtime sizes its KV cache for), "past_present_share_buffer", "layers",
    "kv_heads", "head_size", "kv_bytes_per_token"}; {} when unreadable. KV bytes per token =
    2 (K, V) x layers x KV heads x head size x 4 (the CPU builder's io dtype is fp32; 2 for fp16/bf16 folders)."""
    if not path:
        return {}
    try:
        config = json.loads((Path(path) / "genai_config.json").read_text(encoding="utf-8"))
        model, search = config.get("model") or {}, config.get("search") or {}
        decoder = model.get("decoder") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    out = {"context_length": model.get("context_length"), "max_length": search.get("max_length"),
           "past_present_share_buffer": search.get("past_present_share_buffer"),
           "layers": decoder.get("num_hidden_layers"), "kv_heads": decoder.get("num_key_value_heads"),
           "head_size": decoder.get("head_size")}
    dtype = 2 if re.search(r"fp16|bf16", str(path).lower()) else 4
    if all(isinstance(out[k], int) for k in ("layers", "kv_heads", "head_size")):
        out["kv_bytes_per_token"] = 2 * out["layers"] * out["kv_heads"] * out["head_size"] * dtype
    return out


def context_variant(model_id: str, path: str | os.PathLike, max_length: int) -> str:
    """Register `model_id`'s folder at context `max_length` (the KV cache the runtime allocates) under its own
    id ``<name>-ctx<N>:<version>``: a run folder under data/runtime/contexts with the model's files linked and
    genai_config.json's search.max_length set. Foundry Local has no load option for it (SDK 2.2.1). Idempotent."""
    source = Path(path)
    name, _, version = model_id.rpartition(":")
    variant = f"{name}-ctx{int(max_length)}:{version or 1}"
    folder = CONTEXTS_DIR / variant.replace(":", "-v")
    config = json.loads((source / "genai_config.json").read_text(encoding="utf-8"))
    config.setdefault("search", {})["max_length"] = int(max_length)
    folder.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        target = folder / item.name
        if item.name == "genai_config.json" or target.exists() or not item.is_file():
            continue
        try:
            os.link(item, target)
        except OSError:
            target.symlink_to(item.resolve())
    (folder / "genai_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    with quiet_native():
        existing = _local_catalog().get_model_variant(variant)
        info = existing.info if existing is not None else get_local_model(model_id).info
    if existing is None:
        register_local_model(folder, variant, display_name=f"{info.display_name or name} (context {max_length})",
                             publisher=info.publisher or "", license=info.license or "",
                             parameters=info.get_string_property("parameters"),
                             quantization=info.get_string_property("quantization"))
    return variant
