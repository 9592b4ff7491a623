"""The two HTTP clients the perf scripts compare: the engine in ``core`` (on aiohttp) and the
hand-written asyncio client it replaced (``tests/perf/_handwritten_http.py``, reference only)."""
from __future__ import annotations

from core.bench import ModelSpec, Runner, Settings, default_engine, parse_prompts


def _handwritten(spec: ModelSpec):
    from tests.perf._handwritten_http import HandwrittenHttpEngine
    return HandwrittenHttpEngine(spec.model, spec.endpoint)


CLIENTS = {"aiohttp": default_engine, "hand-written": _handwritten}


def run(client: str, url: str, model: str, n: int, settings: Settings, store: bool = False) -> Runner:
    """``n`` prompts through the runner (engine + records + metrics) with one of ``CLIENTS``."""
    prompts = parse_prompts([f"prompt {i}" for i in range(n)])
    runner = Runner([ModelSpec(model=model, backend="openai", endpoint=url)], prompts, settings, store=store,
                    engine_factory=CLIENTS[client])
    runner.run()
    return runner
