"""Fidelity: how far our measured TTFT p50, TPOT and token counts are from a server with known delays.

    .venv/bin/python -m tests.perf.bench_fidelity [--requests 40]

The test server (own process) sends the first content chunk TTFT after the request arrives and
then one chunk every k*TOK (k tokens per chunk), on an absolute schedule. Expected values follow the
metric definitions: TTFT = TTFT_NOMINAL; TPOT = (last chunk - first chunk) / (tokens - 1), which is
TOK for one token per chunk and TOK*(n-k)/(n-1) for k per chunk. Target: at most 1 % error, for
our HTTP engine (a hand-written asyncio client). For comparison the same is measured with the same
engine on aiohttp (through the runner too) and with a plain ``openai`` client loop (sync, stream,
include_usage).
"""
from __future__ import annotations

import argparse
import statistics
import time

from core import metrics
from core.bench.run.inputs import Settings
from tests.perf._clients import AIOHTTP, OURS, run
from tests.perf._server import server_process

TTFT_S, TOK_S, N = 0.200, 0.020, 40


def expected(tpc: int) -> tuple[float, float]:
    chunks = -(-N // tpc)
    tpot = (chunks - 1) * tpc * TOK_S / (N - 1)
    return TTFT_S * 1000, tpot * 1000


def ours(client: str, url: str, model: str, conc: int, requests: int) -> tuple[float, float, float]:
    runner = run(client, url, model, requests, Settings(rounds=1, warmup=2, max_tokens=1000, concurrency=[conc]))
    rows = [r for r in runner.last_rows if not r["warmup"] and r["ok"]]
    return (statistics.median(r["ttft_ms"] for r in rows), statistics.mean(r["tpot_ms"] for r in rows),
            statistics.mean(r["completion_tokens"] for r in rows))


def openai_loop(url: str, model: str, requests: int) -> tuple[float, float, float]:
    from openai import OpenAI
    client = OpenAI(base_url=url, api_key="x", max_retries=0)
    ttfts, tpots, toks = [], [], []
    for i in range(requests + 2):
        start = time.perf_counter()
        first = None
        usage = None
        stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"p{i}"}],
                                                stream=True, stream_options={"include_usage": True}, max_tokens=1000)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and first is None:
                first = time.perf_counter()
            if chunk.usage:
                usage = chunk.usage.completion_tokens
        end = time.perf_counter()
        if i < 2:
            continue
        ttft, e2e = (first - start) * 1000, (end - start) * 1000
        ttfts.append(ttft)
        tpots.append(metrics.tpot_ms(e2e, ttft, usage))
        toks.append(usage)
    return statistics.median(ttfts), statistics.mean(tpots), statistics.mean(toks)


def server_log(url: str, clear: bool = False) -> list[dict]:
    import json
    import urllib.request
    base = url.removesuffix("/v1")
    req = urllib.request.Request(base + "/_log", method="DELETE" if clear else "GET")
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read())


def server_truth(url: str, skip: int) -> tuple[float, float]:
    """Server-side TTFT p50 (first content write - request received) and mean (last-first)/(n-1)."""
    log = [e for e in server_log(url)[skip:] if e["first_write"] and e["tokens"]]
    ttft = statistics.median((e["first_write"] - e["received"]) * 1000 for e in log)
    tpot = statistics.mean((e["last_write"] - e["first_write"]) * 1000 / (e["tokens"] - 1) for e in log)
    return ttft, tpot


def err(measured: float, truth: float) -> float:
    return abs(measured - truth) / truth * 100


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=40)
    a = ap.parse_args()
    print(f"server: TTFT {TTFT_S * 1000:.0f} ms, {TOK_S * 1000:.0f} ms per token, {N} tokens; "
          f"{a.requests} measured requests per case")
    print("err %: against the nominal delays; vs server %: against the times the server itself stamped "
          "(its own timer lateness removed)")
    print(f"{'client':14} {'conc':>4} {'tok/chunk':>9} {'TTFT p50 ms':>12} {'err %':>6} {'vs server %':>11} "
          f"{'TPOT ms':>8} {'err %':>6} {'vs server %':>11} {'tokens':>6} {'err %':>6}")
    worst = {OURS: [0.0, 0.0], AIOHTTP: [0.0, 0.0]}    # vs nominal, vs the server's stamps
    with server_process("--log") as url:
        for tpc in (1, 2):
            model = f"fid;ttft={TTFT_S};tok={TOK_S};n={N};tpc={tpc}"
            e_ttft, e_tpot = expected(tpc)
            cases = [(who, c) for who in worst for c in (1, 8)] + [("openai loop", 1)]
            for who, conc in cases:
                server_log(url, clear=True)
                if who in worst:
                    ttft, tpot, toks = ours(who, url, model, conc, a.requests)
                else:
                    ttft, tpot, toks = openai_loop(url, model, a.requests)
                s_ttft, s_tpot = server_truth(url, skip=2)
                errs = err(ttft, e_ttft), err(tpot, e_tpot), err(toks, N)
                s_errs = err(ttft, s_ttft), err(tpot, s_tpot)
                if who in worst:
                    worst[who] = [max(worst[who][0], *errs), max(worst[who][1], *s_errs)]
                print(f"{who:14} {conc:>4} {tpc:>9} {ttft:>12.2f} {errs[0]:>6.2f} {s_errs[0]:>11.2f} {tpot:>8.3f} "
                      f"{errs[1]:>6.2f} {s_errs[1]:>11.2f} {toks:>6.1f} {errs[2]:>6.2f}")
    (w, ws), (h, hs) = worst[OURS], worst[AIOHTTP]
    print(f"worst error of ours vs nominal delays: {w:.2f} % (target <= 1 %): {'OK' if w <= 1 else 'MISSED'}; "
          f"vs the server's own stamps: {ws:.2f} %")
    print(f"worst error of the same engine on aiohttp: {h:.2f} % vs nominal ({'OK' if h <= 1 else 'MISSED'}), "
          f"{hs:.2f} % vs the server's stamps")

if __name__ == "__main__":
    main()
