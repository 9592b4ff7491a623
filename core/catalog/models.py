"""One model list: every candidate from every source as rows with the same keys."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from core.catalog import endpoints
from core.errors import UserError

MODEL_FIELDS = (
    "id", "alias", "display_name", "source", "backend", "version", "disk_mb", "license", "publisher",
    "parameters", "quantization", "context_length", "execution_provider", "capabilities", "cached", "loaded",
)
# Extra keys some rows carry: endpoint (base URL), api_key_env, endpoint_name, path.


@dataclass
class ModelList:
    models: list[dict] = field(default_factory=list)
    endpoints: list[dict] = field(default_factory=list)   # name, base_url, status, message, n_models
    notices: list[str] = field(default_factory=list)      # one-line, quiet notices (catalog offline...)

    def as_json(self) -> dict:
        return {"models": self.models, "endpoints": self.endpoints, "notices": self.notices}


def _row(**values) -> dict:
    row = {k: values.get(k) for k in MODEL_FIELDS}
    row["capabilities"] = list(values.get("capabilities") or [])
    if row["version"] is not None:
        row["version"] = str(row["version"])  # one type per column (Foundry gives ints, others strings)
    for extra in ("endpoint", "endpoint_name", "api_key_env", "path"):
        if values.get(extra) is not None:
            row[extra] = values[extra]
    return row


def disk_mb(path: str | Path | None) -> float | None:
    """Size on disk of a file or folder, in MB (10^6 bytes), measured from the files."""
    if not path:
        return None
    p = Path(path)
    if p.is_file():
        return round(p.stat().st_size / 1e6, 1)
    if p.is_dir():
        return round(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 1e6, 1)
    return None


def _foundry_rows(include_catalog: bool, loaded_ids: set[str], out: ModelList) -> None:
    try:
        from core.catalog import foundry
    except Exception as exc:  # the SDK missing or broken must not hide the other sources
        out.notices.append(f"Foundry Local unavailable: {' '.join(str(exc).split())}")
        return
    try:
        local = foundry.list_local_models()
    except UserError as exc:
        out.notices.append(exc.one_line())
        local = []
    seen = set()
    for m in local:
        m = dict(m)
        m["loaded"] = bool(m.get("loaded")) or m["id"] in loaded_ids
        out.models.append(_row(**m))
        seen.add(m["id"])
    if include_catalog:
        try:
            catalog, notice = foundry.list_public_catalog()
        except UserError as exc:
            catalog, notice = [], exc.one_line()
        if notice:
            out.notices.append(notice)
        for m in catalog:
            if m["id"] not in seen:
                out.models.append(_row(**{**m, "loaded": bool(m.get("loaded")) or m["id"] in loaded_ids}))


GGUF_DISPLAY_NAME = "SmolLM2-135M-Instruct Q4_1 (llama.cpp)"
ENGINE_NAMES = {"foundry": "Foundry Local", "llamacpp": "llama.cpp", "openai": "OpenAI-compatible"}


def display_names() -> dict[str, str]:
    """{model id: display name} known without starting any runtime: the starter pack's names and the GGUF's."""
    out = {}
    try:
        from core.catalog.starter import SMOLLM2_GGUF, starter_models
        out = {m["id"]: m["display_name"] for m in starter_models() if m.get("display_name")}
        out[SMOLLM2_GGUF] = GGUF_DISPLAY_NAME
    except Exception:  # a broken starter file must not hide the rest of a page
        pass
    return out


def presentable_name(model_id: str, backend: str, *, label: str | None = None,
                     names: dict[str, str] | None = None) -> str:
    """"Display name · engine" for people (ids stay in details): the catalog's display name, else the name the
    user gave the model in the run, else the id; the engine is left out when the name already says it."""
    names = display_names() if names is None else names
    base = names.get(model_id) or (label if label and label != model_id else None) or model_id
    engine = ENGINE_NAMES.get(backend, backend)
    return base if engine.lower() in base.lower() else f"{base} · {engine}"


@functools.lru_cache(maxsize=32)
def _gguf_window_cached(path: str, mtime: float) -> int | None:
    from core.catalog.gguf_file import gguf_context_length
    return gguf_context_length(path)


def _gguf_window(path: str) -> int | None:
    """A GGUF's context window from its metadata (read once per file version)."""
    try:
        return _gguf_window_cached(path, Path(path).stat().st_mtime)
    except OSError:
        return None


def _llamacpp_rows(out: ModelList, loaded_ids: set[str]) -> None:
    try:
        from core.catalog.starter import starter_gguf_path
    except Exception:
        return
    gguf = starter_gguf_path()
    if gguf and Path(gguf).is_file():
        out.models.append(_row(
            id=Path(gguf).name, alias="smollm2-135m-instruct-gguf", display_name=GGUF_DISPLAY_NAME,
            source="llama.cpp", backend="llamacpp", version="Q4_1", disk_mb=disk_mb(gguf), license="apache-2.0",
            publisher="HuggingFaceTB", parameters="135M", quantization="Q4_1", context_length=_gguf_window(str(gguf)),
            execution_provider="llama.cpp CPU", capabilities=["chat-completion"], cached=True, loaded=Path(gguf).name in loaded_ids,
            path=str(gguf),
        ))


def _endpoint_rows(out: ModelList, timeout: float) -> None:
    for ep in endpoints.probe_all(timeout=timeout):
        out.endpoints.append({
            "name": ep["name"], "base_url": ep["base_url"], "api_key_env": ep["api_key_env"],
            "status": ep["status"], "message": ep["message"], "n_models": len(ep["models"]),
        })
        for m in ep["models"]:
            out.models.append(_row(
                id=m["id"], alias=m["id"], display_name=m["id"], source=f"endpoint:{ep['name']}", backend="openai",
                version=m.get("version"), license=m.get("license"), publisher=m.get("owned_by"),
                context_length=m.get("context_length") or m.get("max_model_len"),
                capabilities=["chat-completion"], cached=None, loaded=True,
                endpoint=ep["base_url"], endpoint_name=ep["name"], api_key_env=ep["api_key_env"],
            ))


def list_models(*, include_catalog: bool = True, include_endpoints: bool = True,
                loaded_ids: set[str] | None = None, timeout: float = 3.0) -> ModelList:
    """Every candidate: Foundry Local (local catalog, public catalog when reachable), the llama.cpp
    starter GGUF, and the models of each configured endpoint (unreachable ones listed as such)."""
    out = ModelList()
    _foundry_rows(include_catalog, loaded_ids or set(), out)
    _llamacpp_rows(out, loaded_ids or set())
    if include_endpoints:
        _endpoint_rows(out, timeout)
    return out


def resolve_model(name: str, models: list[dict] | None = None, *, backend: str | None = None) -> dict:
    """A model by id, alias or display name (Foundry Local first). UserError if unknown."""
    rows = models if models is not None else list_models(include_catalog=False).models
    if backend:
        rows = [m for m in rows if m["backend"] == backend]
    for key in ("id", "alias", "display_name"):
        hits = [m for m in rows if (m.get(key) or "").lower() == name.lower()]
        if hits:
            hits.sort(key=lambda m: (m["backend"] != "foundry", not m.get("cached")))
            return hits[0]
    known = ", ".join(sorted({m["alias"] or m["id"] for m in rows})[:12]) or "none"
    raise UserError(f"unknown model {name!r} (known: {known})")
