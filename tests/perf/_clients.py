"""The two HTTP clients the perf scripts compare: the engine in ``core`` (a hand-written asyncio
HTTP/1.1 client) and the same engine on aiohttp (``tests/perf/_aiohttp_http.py``, reference only)."""
from __future__ import annotations

from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.run.runner import Runner
from core.engines import open_engine

OURS, AIOHTTP = "ours", "aiohttp"


def _aiohttp(spec: ModelSpec):
    from tests.perf._aiohttp_http import AiohttpHttpEngine
    return AiohttpHttpEngine(spec.model, spec.endpoint)


CLIENTS = {OURS: open_engine, AIOHTTP: _aiohttp}
LABELS = {OURS: "ours (hand-written asyncio client, core)", AIOHTTP: "the same engine on aiohttp"}


def run(client: str, url: str, model: str, n: int, settings: Settings, store: bool = False) -> Runner:
    """``n`` prompts through the runner (engine + records + metrics) with one of ``CLIENTS``."""
    prompts = parse_prompts([f"prompt {i}" for i in range(n)])
    runner = Runner([ModelSpec(model=model, backend="openai", endpoint=url)], prompts, settings, store=store,
                    engine_factory=CLIENTS[client])
    runner.run()
    return runner
