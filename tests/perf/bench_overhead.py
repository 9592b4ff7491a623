"""Overhead of our Foundry engine over a bare loop calling the SDK: TTFT within 5 ms or 5%, decode
tokens/s ratio >= 0.98; printed as medians of alternating pairs with their spread (min..max).

    .venv/bin/python -m tests.perf.bench_overhead [--model smollm2-135m-instruct-int4-generic-cpu:1]
        [--requests 12] [--max-tokens 128] [--pairs 3]

Both sides run the same model in their own process, on the same prompts, with the same options
(temperature 0, seed 0): ours through the runner and FoundryEngine (a worker process, events over
a pipe); the bare loop in a child process calling ``ChatSession.process_streaming_request`` directly
and timing it the same way. Decode speed = sum(tokens - 1) / sum(E2E - TTFT) over the requests
(tokens from usage). The two alternate (A B A B ...) so drift hits both.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from tests.perf._server import REPO

PROMPTS = [f"Write a short paragraph about topic number {i}: what it is and why it matters." for i in range(50)]


def bare(model_id: str, n: int, max_tokens: int) -> None:
    """Child process: load the model with the SDK and stream n requests; print JSON timings."""
    from foundry_local_sdk import ChatSession, MessageItem, Request, RequestOptions, SearchOptions

    from core.catalog.foundry import get_local_model, get_manager, quiet_native
    with quiet_native():
        get_manager()
        model = get_local_model(model_id)
        model.load()
        out = []
        for i in range(n + 1):
            with ChatSession(model) as session:
                session.set_options(RequestOptions(search=SearchOptions(temperature=0.0, max_output_tokens=max_tokens,
                                                                        seed=0)))
                session.set_streaming(True)
                request = Request()
                request.add_item(MessageItem.user(PROMPTS[i % len(PROMPTS)]))
                with request:
                    start = time.perf_counter()
                    first = None
                    with session.process_streaming_request(request) as stream:
                        for item in stream:
                            if first is None and getattr(item, "text", None):
                                first = time.perf_counter()
                        end = time.perf_counter()
                        with stream.final_response as final:
                            usage = final.get_usage()
            if i:   # the first request is a warm-up
                out.append({"ttft": first - start, "decode": end - first, "tokens": usage.completion_tokens})
        model.unload()
    print(json.dumps(out), flush=True)


def run_bare(model_id: str, n: int, max_tokens: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "tests.perf.bench_overhead", "--bare", "--model", model_id,
                          "--requests", str(n), "--max-tokens", str(max_tokens)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if res.returncode:
        raise SystemExit(f"bare loop failed: {res.stderr.strip()[-300:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_ours(model_id: str, n: int, max_tokens: int) -> list[dict]:
    from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
    from core.bench.run.runner import Runner
    prompts = parse_prompts(PROMPTS[1:n + 1])
    runner = Runner([ModelSpec(model=model_id, backend="foundry")], prompts,
                    Settings(rounds=1, warmup=1, max_tokens=max_tokens, concurrency=[1]), store=False)
    runner.run()
    rows = [r for r in runner.last_rows if not r["warmup"] and r["ok"]]
    return [{"ttft": r["ttft_ms"] / 1000, "decode": (r["e2e_ms"] - r["ttft_ms"]) / 1000,
             "tokens": r["completion_tokens"]} for r in rows]


def decode_tok_s(rows: list[dict]) -> float:
    return sum(r["tokens"] - 1 for r in rows) / sum(r["decode"] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct-int4-generic-cpu:1")
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.bare:
        bare(a.model, a.requests, a.max_tokens)
        return
    ours_s, bare_s, ours_ttft, bare_ttft = [], [], [], []
    for i in range(a.pairs):
        if i % 2 == 0:   # which side goes first alternates too, so an order effect hits both
            o = run_ours(a.model, a.requests, a.max_tokens)
            b = run_bare(a.model, a.requests, a.max_tokens)
        else:
            b = run_bare(a.model, a.requests, a.max_tokens)
            o = run_ours(a.model, a.requests, a.max_tokens)
        ours_s.append(decode_tok_s(o))
        bare_s.append(decode_tok_s(b))
        ours_ttft.append(statistics.median(r["ttft"] for r in o) * 1000)
        bare_ttft.append(statistics.median(r["ttft"] for r in b) * 1000)
        print(f"pair: ours {ours_s[-1]:.1f} tok/s, bare {bare_s[-1]:.1f} tok/s, ratio {ours_s[-1] / bare_s[-1]:.3f}; "
              f"TTFT p50 ours {ours_ttft[-1]:.1f} ms, bare {bare_ttft[-1]:.1f} ms", flush=True)
    ratios = [o / b for o, b in zip(ours_s, bare_s)]
    ratio = statistics.median(ratios)
    over = [o - b for o, b in zip(ours_ttft, bare_ttft)]
    over_pct = [(o - b) / b * 100 for o, b in zip(ours_ttft, bare_ttft)]
    ttft_over, ttft_pct = statistics.median(over), statistics.median(over_pct)
    print(f"model {a.model}, {a.requests} requests x {a.max_tokens} max tokens, {a.pairs} alternating pairs")
    print(f"decode speed: ours {statistics.median(ours_s):.1f} tok/s, bare SDK loop {statistics.median(bare_s):.1f} tok/s")
    print(f"TTFT p50: ours {statistics.median(ours_ttft):.1f} ms, bare {statistics.median(bare_ttft):.1f} ms")
    ok_ttft = ttft_over <= 5.0 or ttft_pct <= 5.0
    print(f"TTFT overhead ours - bare (median of pairs): {ttft_over:+.1f} ms ({ttft_pct:+.1f}%), spread "
          f"{min(over):+.1f}..{max(over):+.1f} ms (target within 5 ms or 5%): {'OK' if ok_ttft else 'MISSED'}")
    print(f"decode ratio ours/bare (median of pairs): {ratio:.3f}, spread {min(ratios):.3f}..{max(ratios):.3f} "
          f"(target >= 0.98): {'OK' if ratio >= 0.98 else 'MISSED'}")


if __name__ == "__main__":
    main()
