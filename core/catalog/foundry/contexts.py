"""The context a run loads a model with: `context_variant()` registers a model's folder at a context length
under its own id."""
from __future__ import annotations

import json
import os
from pathlib import Path

from core.config import RUNTIME_DIR
from core.catalog.foundry.runtime import _local_catalog, quiet_native
from core.catalog.foundry.models import get_local_model
from core.catalog.foundry.folders import register_local_model


CONTEXTS_DIR = RUNTIME_DIR / "contexts"


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

