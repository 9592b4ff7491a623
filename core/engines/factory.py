"""The engine for one model: `make_engine(backend, model, ...)`."""
from __future__ import annotations

from core.engines.base import BACKENDS, Engine
from core.errors import UserError


def make_engine(backend: str, model: str, *, endpoint: str | None = None, api_key_env: str | None = None,
                model_row: dict | None = None, **kwargs) -> Engine:
    """The engine for one model. ``model_row`` is a row of ``core.catalog.models.list_models()`` when known."""
    if backend == "openai":
        from core.engines.http import HttpEngine
        if not endpoint:
            raise UserError(f"model {model!r}: an OpenAI-compatible engine needs an endpoint URL")
        return HttpEngine(model, endpoint, api_key_env=api_key_env, **kwargs)
    if backend == "llamacpp":
        from core.engines.llamacpp import LlamaCppEngine
        path = (model_row or {}).get("path") or model
        return LlamaCppEngine(path, **kwargs)
    if backend == "foundry":
        from core.engines.foundry import FoundryEngine
        return FoundryEngine(model, model_row=model_row)
    raise UserError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")



def open_engine(spec, context_length: int | None = None) -> Engine:
    """The engine for a benchmark's model spec (``core.bench.run.inputs.ModelSpec``: backend, model, path,
    endpoint, api_key_env, server_pid, version, execution_provider), loaded with a context window of
    ``context_length`` tokens when given (the length sweep's setting), else the model's own."""
    if spec.backend == "llamacpp":
        from core.engines.llamacpp import LlamaCppEngine, resolve_gguf
        return LlamaCppEngine(spec.path or resolve_gguf(spec.model), n_ctx=context_length)
    if spec.backend == "openai":
        from core.engines.http import HttpEngine
        if not spec.endpoint:
            raise UserError(f"model {spec.name!r}: an OpenAI-compatible engine needs an endpoint URL")
        from core.engines.base import resolve_server_pid
        from core.engines.http import local_tokenizer
        pid, source = resolve_server_pid(spec.endpoint, spec.server_pid)
        engine = HttpEngine(spec.model, spec.endpoint, api_key_env=spec.api_key_env, server_pid=pid,
                            count_tokens=local_tokenizer(spec.model))
        engine.pid_source = source
        return engine
    if spec.backend == "foundry":
        from core.engines.foundry import FoundryEngine
        return FoundryEngine(spec.model, model_row={"version": spec.version, "path": spec.path,
                                                    "execution_provider": spec.execution_provider},
                             context_length=context_length)
    raise UserError(f"unknown backend {spec.backend!r} (one of {', '.join(BACKENDS)})")
