"""Model rows: `list_local_models()` gives rows of one shape (MODEL_KEYS) for the model list;
`get_local_model()` one model of the LOCAL catalog."""
from __future__ import annotations

import contextlib
import re

from core.catalog.foundry.loaded import loaded_model_ids
from core.catalog.foundry.runtime import _local_catalog, quiet_native
from core.catalog.foundry.folders import _genai_provider, folder_size_mb, genai_context


MODEL_KEYS = (
    "id", "alias", "display_name", "source", "backend", "version", "disk_mb", "license", "publisher",
    "parameters", "quantization", "context_length", "execution_provider", "capabilities", "cached",
    "loaded", "path",
)


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

CONTEXT_VARIANT = re.compile(r"-ctx[0-9]+:[0-9]+$")   # a run's own registration of a model at a context length

