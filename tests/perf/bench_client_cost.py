"""Client cost: CPU seconds our client spends per request at concurrency 1 (target <= 0.01).

    .venv/bin/python -m tests.perf.bench_client_cost [--requests 200] [--tokens 128] [--pairs 2]

The server runs in its own process (its CPU is not counted). Each answer streams TOKENS tokens,
one per SSE chunk, 1 ms apart, with a usage chunk. Measured: CPU time (user + system) of this process
over the measured requests, divided by their number, through the runner (engine + records + metrics)
for our HTTP engine (a hand-written asyncio client) and for the same engine on aiohttp (the two
alternate, PAIRS times, so drift hits both; the best of each is kept); then ours with its rows stored
in DuckDB as well, and a plain ``openai`` client loop for scale.
"""
from __future__ import annotations

import argparse
import os
import tempfile

from core.bench.run.inputs import Settings
from tests.perf._clients import AIOHTTP, LABELS, OURS, run
from tests.perf._server import cpu_s, server_process

TARGET = 0.01


def ours(client: str, url: str, model: str, n: int, store: bool = False) -> float:
    c0 = cpu_s()
    run(client, url, model, n, Settings(rounds=1, warmup=3, max_tokens=4096, concurrency=[1]), store=store)
    return (cpu_s() - c0) / n


def openai_loop(url: str, model: str, n: int) -> float:
    import time

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
    ap.add_argument("--pairs", type=int, default=2)
    a = ap.parse_args()
    model = f"cost;tok=0.001;n={a.tokens}"
    os.environ["SLM_DB"] = os.path.join(tempfile.mkdtemp(), "cost.duckdb")
    runs: dict[str, list[float]] = {OURS: [], AIOHTTP: []}
    with server_process() as url:
        for _ in range(a.pairs):
            for client in runs:
                runs[client].append(ours(client, url, model, a.requests))
        stored = ours(OURS, url, model, a.requests, store=True)
        plain = openai_loop(url, model, a.requests)
    mine, other = min(runs[OURS]), min(runs[AIOHTTP])
    print(f"{a.requests} requests at concurrency 1, {a.tokens} tokens each (one per chunk), server in its own process")
    print(f"CPU s/request, best of {a.pairs} alternating runs (all: "
          + "; ".join(f"{k} {', '.join(f'{v:.4f}' for v in vs)}" for k, vs in runs.items()) + ")")
    print(f"{LABELS[OURS] + ', engine + runner + metrics:':70}{mine:.4f} CPU s/request  ({mine / a.tokens * 1e6:.0f} us/token)")
    print(f"{LABELS[AIOHTTP] + ', engine + runner + metrics:':70}{other:.4f} CPU s/request  ({other / a.tokens * 1e6:.0f} us/token)"
          f"  (ratio aiohttp/ours {other / mine:.2f})")
    print(f"{'ours, rows stored in DuckDB as well:':70}{stored:.4f} CPU s/request")
    print(f"{'plain openai client loop:':70}{plain:.4f} CPU s/request  (ratio ours/openai {mine / plain:.2f})")
    print(f"target <= {TARGET} CPU s/request: ours {'OK' if mine <= TARGET else 'MISSED'} "
          f"({'OK' if stored <= TARGET else 'MISSED'} with the rows stored in DuckDB as well); "
          f"on aiohttp {'OK' if other <= TARGET else 'MISSED'}")

if __name__ == "__main__":
    main()
