"""Bring your own ONNX Runtime GenAI folder: what a folder holds (size, execution provider, context),
`validate_model_folder()`, and its registration in the LOCAL catalog (`register_local_model()`)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from core.config import limit
from core.errors import UserError, one_line
from core.output import parse_json_strict, term_text
from core.catalog.foundry.runtime import CPU_EP, _local_catalog, quiet_native


_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*:[0-9]+$")


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

