"""Client cost: CPU seconds our client spends per request at concurrency 1 (target <= 0.02).

    .venv/bin/python -m tests.perf.bench_client_cost [--requests 200] [--tokens 128]

The server runs in its own process (its CPU is not counted). Each answer streams TOKENS tokens,
one per SSE chunk, 1 ms apart, with a usage chunk. Measured: CPU time (user + system) of this process
over the measured requests, divided by their number, for our runner (engine + records + metrics;
storing the rows in DuckDB is measured apart) and for a plain ``openai`` client loop.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from core.bench.inputs import ModelSpec, Settings, parse_prompts
from core.bench.runner import Runner
from tests.perf._server import cpu_s, server_process


def ours(url: str, model: str, n: int, store: bool) -> tuple[float, float]:
    prompts = parse_prompts([f"prompt {i}" for i in range(n)])
    runner = Runner([ModelSpec(model=model, backend="openai", endpoint=url)], prompts,
                    Settings(rounds=1, warmup=3, max_tokens=4096, concurrency=[1]), store=store)
    c0, t0 = cpu_s(), time.perf_counter()
    runner.run()
    return (cpu_s() - c0) / n, time.perf_counter() - t0


def openai_loop(url: str, model: str, n: int) -> float:
    from openai import OpenAI
    client = OpenAI(base_url=url, api_key="x", max_retries=0)

    def one(i):
        stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"p{i}"}],
                                                stream=True, stream_options={"include_usage": True}, max_tokens=4096)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                time.perf_counter()
    for i in range(3):
        one(i)
    c0 = cpu_s()
    for i in range(n):
        one(i)
    return (cpu_s() - c0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=128)
    a = ap.parse_args()
    model = f"cost;tok=0.001;n={a.tokens}"
    os.environ["SLM_DB"] = os.path.join(tempfile.mkdtemp(), "cost.duckdb")
    with server_process() as url:
        mine, wall = ours(url, model, a.requests, store=False)
        stored, _ = ours(url, model, a.requests, store=True)
        plain = openai_loop(url, model, a.requests)
    print(f"{a.requests} requests at concurrency 1, {a.tokens} tokens each (one per chunk), server in its own process")
    print(f"ours (engine + runner + metrics):        {mine:.4f} CPU s/request  ({mine / a.tokens * 1e6:.0f} us/token)")
    print(f"ours, rows stored in DuckDB as well:     {stored:.4f} CPU s/request")
    print(f"plain openai client loop:                {plain:.4f} CPU s/request  (ratio ours/plain {mine / plain:.2f})")
    print(f"target <= 0.02 CPU s/request: {'OK' if stored <= 0.02 else 'MISSED'}")


if __name__ == "__main__":
    main()
