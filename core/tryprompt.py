""""Try a prompt": stream one answer from any model in the list, with its TTFT and decode speed."""
from __future__ import annotations

import time
from typing import Iterator

from core.errors import UserError


def _foundry_events(model: dict, messages, pool, max_tokens: int):
    if model["id"] not in pool.ids():
        pool.load(model["id"])
    worker = pool.get(model["id"])
    yield from worker.chat(messages, temperature=0.0, max_tokens=max_tokens, seed=0)


def stream_answer(model: dict, prompt: str, *, pool, max_tokens: int = 128, stats: dict | None = None) -> Iterator[str]:
    """Yield the answer's text pieces; fill `stats` with ttft_ms, e2e_ms, completion_tokens,
    token_count_source and decode_tok_s (metrics.md definitions) when the stream ends."""
    from core import metrics

    stats = stats if stats is not None else {}
    messages = [{"role": "user", "content": prompt}]
    if model["backend"] == "foundry":
        events = _foundry_events(model, messages, pool, max_tokens)
    else:
        from core.engines import stream_events

        events = stream_events(model["backend"], model["id"], messages, endpoint=model.get("endpoint"),
                               api_key_env=model.get("api_key_env"), max_tokens=max_tokens)
    start = first = end = None
    chunks = 0
    finish = tokens = None
    source = "chunks"
    for ev in events:
        kind = ev["type"]
        if kind == "start":
            start = ev["t"]
        elif kind == "chunk" and ev.get("text"):
            first = first or ev["t"]
            chunks += 1
            yield ev["text"]
        elif kind == "done":
            end, finish = ev["t"], ev.get("finish_reason")
            if ev.get("completion_tokens") is not None:
                tokens, source = ev["completion_tokens"], ev.get("token_count_source", "usage")
        elif kind == "error":
            raise UserError(f"{model['id']}: {ev['error']}")
    end = end or time.perf_counter()
    if tokens is None:
        tokens = chunks
    stats.update(metrics.single_request(start, first, end, tokens), completion_tokens=tokens,
                 token_count_source=source, finish_reason=finish)
