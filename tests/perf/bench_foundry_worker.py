"""Per-chunk overhead of the worker process: FoundryWorker vs a bare in-process SDK loop.

    .venv/bin/python -m tests.perf.bench_foundry_worker [MODEL_ID] [--rounds N] [--max-tokens N]

Both sides run the same prompt, greedy, a fresh ChatSession per request, alternating rounds so that
machine noise hits both alike. Decode speed = (completion tokens - 1) / (end - first chunk), tokens
from the runtime's usage, times stamped next to the runtime on both sides. Prints medians and the
ratio worker/bare (the target: >= 0.97). Not collected by pytest.
"""
from __future__ import annotations

import argparse
import statistics
import time

PROMPT = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]


def bare_round(model, max_tokens: int) -> tuple[float, float]:
    from foundry_local_sdk import ChatSession, MessageItem, Request, RequestOptions, SearchOptions

    with ChatSession(model) as session:
        session.set_options(RequestOptions(search=SearchOptions(temperature=0.0, max_output_tokens=max_tokens, seed=0)))
        session.set_streaming(True)
        with Request().add_item(MessageItem.user(PROMPT[0]["content"])) as request:
            start = time.perf_counter()
            first = None
            with session.process_streaming_request(request) as stream:
                for item in stream:
                    if first is None and getattr(item, "text", None):
                        first = time.perf_counter()
                end = time.perf_counter()
                with stream.final_response as final:
                    tokens = final.get_usage().completion_tokens
    return (tokens - 1) / (end - first), first - start


def worker_round(worker, max_tokens: int) -> tuple[float, float]:
    events = list(worker.chat(PROMPT, temperature=0.0, max_tokens=max_tokens, seed=0))
    chunks = [e for e in events if e["type"] == "chunk"]
    done = events[-1]
    assert done["type"] == "done", done
    return (done["completion_tokens"] - 1) / (done["t"] - chunks[0]["t"]), chunks[0]["t"] - events[0]["t"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="smollm2-135m-instruct-int4-generic-cpu:1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    from core.foundry import get_local_model, quiet_native
    from core.foundry_worker import FoundryWorker

    model = get_local_model(args.model)
    with quiet_native():
        model.load()
    bare, worker_speeds, bare_ttft, worker_ttft = [], [], [], []
    with FoundryWorker(args.model) as worker:
        worker.load()
        bare_round(model, 8)  # warm-up both
        list(worker.chat(PROMPT, max_tokens=8))
        for _ in range(args.rounds):
            with quiet_native():
                speed, ttft = bare_round(model, args.max_tokens)
            bare.append(speed)
            bare_ttft.append(ttft)
            speed, ttft = worker_round(worker, args.max_tokens)
            worker_speeds.append(speed)
            worker_ttft.append(ttft)
    with quiet_native():
        model.unload()
    b, w = statistics.median(bare), statistics.median(worker_speeds)
    print(f"model {args.model}, {args.rounds} rounds, max_tokens {args.max_tokens}")
    print(f"bare SDK loop  decode {b:7.1f} tok/s  TTFT {statistics.median(bare_ttft) * 1000:6.1f} ms")
    print(f"FoundryWorker  decode {w:7.1f} tok/s  TTFT {statistics.median(worker_ttft) * 1000:6.1f} ms")
    print(f"ratio worker/bare decode: {w / b:.3f} (target >= 0.97)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
