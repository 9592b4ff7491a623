"""Client ceiling: requests/s our HTTP engine sustains against a zero-delay server at concurrency 32.

    .venv/bin/python -m tests.perf.bench_ceiling [--requests 3000] [--tokens 16] [--concurrency 32]

The server (own process, stdlib asyncio) answers at once: TOKENS tokens, one per SSE chunk, plus a
usage chunk. Both share this machine's cores, as they would on a laptop. Measured through the
runner (engine + records + metrics, rows not stored): requests / (last end - first start).
For comparison: one ``AsyncOpenAI`` event loop at the same concurrency. Target: at least 300 req/s.
"""
from __future__ import annotations

import argparse
import asyncio
import time

from core.bench.inputs import ModelSpec, Settings, parse_prompts
from core.bench.runner import Runner
from tests.perf._server import server_process


def ours(url: str, model: str, n: int, conc: int) -> tuple[float, int]:
    prompts = parse_prompts([f"prompt {i}" for i in range(n)])
    runner = Runner([ModelSpec(model=model, backend="openai", endpoint=url)], prompts,
                    Settings(rounds=1, warmup=conc, max_tokens=4096, concurrency=[conc], timeout_s=60), store=False)
    runner.run()
    rows = [r for r in runner.last_rows if not r["warmup"]]
    window = max(r["end_offset_s"] for r in rows) - min(r["start_offset_s"] for r in rows)
    return len(rows) / window, sum(not r["ok"] for r in rows)


def async_openai(url: str, model: str, n: int, conc: int) -> float:
    from openai import AsyncOpenAI

    async def go():
        client = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        sem = asyncio.Semaphore(conc)

        async def one(i):
            async with sem:
                stream = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"p{i}"}], stream=True,
                    stream_options={"include_usage": True}, max_tokens=4096)
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(conc)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)
    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=32)
    a = ap.parse_args()
    model = f"ceiling;n={a.tokens}"
    with server_process() as url:
        rate, failed = ours(url, model, a.requests, a.concurrency)
        other = async_openai(url, model, min(a.requests, 1000), a.concurrency)
    print(f"zero-delay server, {a.tokens} tokens per answer, concurrency {a.concurrency}, {a.requests} requests")
    print(f"ours (runner + HTTP engine): {rate:7.1f} req/s ({failed} failed)")
    print(f"one AsyncOpenAI event loop:  {other:7.1f} req/s (ratio ours/AsyncOpenAI {rate / other:.2f})")
    print(f"target >= 300 req/s: {'OK' if rate >= 300 and not failed else 'MISSED'}")


if __name__ == "__main__":
    main()
