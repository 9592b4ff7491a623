"""Every benchmark number's formula, defined once (docs/metrics.md is the specification, written from
``core.metrics.table``).

Engines stamp ``time.perf_counter()`` seconds into ``RequestRecord``s; this module turns records
into per-request rows (what the store keeps) and holds the formulas that ``core.metrics.table`` compiles
into per-level results (what the CLI, the page and the reports show). The unit is in every name;
``None`` means unknown, never 0.

Per request:
- ``queue_ms``: ready to go (its turn in the schedule) -> it got a free slot; never inside TTFT.
- ``engine_wait_ms``: for an engine that serves one request at a time (Foundry Local worker,
  llama-cpp-python server), the wait for the engine at concurrency > 1, never inside TTFT or E2E:
  ``measured`` (the engine stamps when it became free) or ``inferred`` (the engine serves requests
  in order: a request's service starts when the previous one ended; TTFT and E2E are counted from there).
- ``connect_ms``: opening a connection (TCP/TLS) for the request, outside TTFT; None = none was opened.
- ``ttft_ms``: first chunk carrying output text - start (role-only / empty chunks are skipped).
- ``e2e_ms``: end of the response (``[DONE]``, else the finish-reason event) - start.
- ``completion_tokens``: usage, else the model's tokenizer, else content chunks; the source is kept.
  Never the prompt's tokens.
- ``tpot_ms`` (= mean inter-token latency, ``itl_ms``): (E2E - TTFT) / (tokens - 1), 2 tokens or more.
- ``decode_tokens_per_s`` (decode speed, per request) = 1000 / tpot_ms; ``e2e_output_tokens_per_s`` = tokens / E2E.
- ``chunk_gaps_ms``: raw gaps between consecutive content chunks (a chunk may carry several tokens).
- A request is ok only with no error and a finish reason: a stream that ends without one is failed.

Per level (model x engine x concurrency):
- warm-up requests are excluded; latency statistics use successful requests only.
- ``throughput_tok_s`` (aggregate throughput, per level) = output tokens of successful requests /
  (last end - first start) of the measured window (all measured requests, failed ones included in the
  window). A resumed level was measured in several sittings (``segment``): tokens / the sum of their windows.
  Never the name of decode speed, and decode speed never goes by this name.
- ``observer_cpu_s``: CPU seconds of the app's own process (the one running the benchmark) over the window.
- ``cpu_s_per_token`` = CPU seconds of the model's process over the measured window / output tokens.
- memory: of the model's process only (peak = VmHWM); unknown when its PID is unknown. Shown as runtime
  baseline (``rss_before_mb``), weights (``weights_mb`` = after load - before) and working memory
  (``working_mb`` = peak - after load).
- ``small_sample``: fewer than 20 successful requests: tails indicative only; an interval needs 2 samples.
"""
from __future__ import annotations

from collections import Counter

from core.stats import TAIL_MIN_SAMPLES, iqr_outliers

MS_PER_S = 1000.0

def _ms(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a) * MS_PER_S


def completion_tokens_of(rec, chunk_count: int | None = None) -> tuple[int | None, str | None]:
    """Completion tokens and their source: usage, else tokenizer, else chunks (metrics.md)."""
    if rec.usage_completion_tokens is not None:
        return rec.usage_completion_tokens, "usage"
    if rec.tokenizer_completion_tokens is not None:
        return rec.tokenizer_completion_tokens, "tokenizer"
    n = len(rec.chunk_times) if chunk_count is None else chunk_count
    if n:
        return n, "chunks"
    return None, None


def is_ok(rec) -> bool:
    return rec.error is None and rec.finish_reason is not None and rec.start is not None and rec.end is not None


def tpot_ms(e2e_ms: float | None, ttft_ms: float | None, tokens: int | None) -> float | None:
    """(E2E - TTFT) / (tokens - 1) for 2 tokens or more, else None."""
    if e2e_ms is None or ttft_ms is None or tokens is None or tokens < 2:
        return None
    return (e2e_ms - ttft_ms) / (tokens - 1)


def per_s(value_ms: float | None) -> float | None:
    """1000 / value_ms (tokens per second from ms per token); None for None or non-positive."""
    if value_ms is None or value_ms <= 0:
        return None
    return MS_PER_S / value_ms


def prefill_tokens_per_s(prompt_tokens: int | None, ttft_ms: float | None) -> float | None:
    """Prompt tokens / TTFT in seconds (the one definition of prefill speed); None when either is unknown."""
    if prompt_tokens is None or ttft_ms is None or ttft_ms <= 0 or prompt_tokens <= 0:
        return None
    return prompt_tokens / (ttft_ms / MS_PER_S)


def time_to_notes_ms(ttft_ms: float | None, tpot_ms: float | None, output_tokens: int) -> float | None:
    """TTFT + (out - 1) x TPOT: the wait for a whole answer of `output_tokens` tokens (None when either is unknown)."""
    if ttft_ms is None or tpot_ms is None:
        return None
    return ttft_ms + (output_tokens - 1) * tpot_ms


def kv_cache_mb(bytes_per_token: int | None, context_tokens: int | None) -> float | None:
    """KV cache for a context of `context_tokens` in MB (1024*1024 bytes); None when either is unknown."""
    if not bytes_per_token or not context_tokens:
        return None
    return bytes_per_token * context_tokens / 1048576


def e2e_output_tokens_per_s(tokens: int | None, e2e_ms: float | None) -> float | None:
    if tokens is None or e2e_ms is None or e2e_ms <= 0:
        return None
    return tokens / (e2e_ms / MS_PER_S)


def request_row(rec, *, level_start: float, done_at: float | None = None) -> dict:
    """The stored row of one request (no ids: the runner adds them)."""
    ok = is_ok(rec)
    tokens, source = completion_tokens_of(rec)
    ttft = _ms(rec.start, rec.first_token_at)
    e2e = _ms(rec.start, rec.end) if ok else None
    gaps = [(b - a) * MS_PER_S for a, b in zip(rec.chunk_times, rec.chunk_times[1:])]
    end = rec.end if rec.end is not None else done_at
    slot = rec.slot_at if rec.slot_at is not None else rec.start
    waited_from = rec.slot_at if rec.slot_at is not None else rec.queued_at
    engine_wait = _ms(waited_from, rec.engine_ready_at) if rec.engine_ready_at is not None else None
    return {
        "ok": ok,
        "start_offset_s": (rec.start - level_start) if rec.start is not None else None,
        "end_offset_s": (end - level_start) if end is not None else None,
        "queue_ms": _ms(rec.queued_at, slot),
        "engine_wait_ms": engine_wait,
        "engine_wait_source": "measured" if engine_wait is not None else None,
        "connect_ms": rec.connect_s * MS_PER_S if rec.connect_s is not None else None,
        "ttft_ms": ttft,
        "e2e_ms": e2e,
        "tpot_ms": tpot_ms(e2e, ttft, tokens) if ok else None,
        "completion_tokens": tokens,
        "prompt_tokens": rec.prompt_tokens,
        "token_count_source": source,
        "chunk_gaps_ms": gaps,
        "chunk_count": len(rec.chunk_times),
        "finish_reason": rec.finish_reason,
        "output_text": rec.output_text,
        "error": None if ok else (rec.error or "no finish reason"),
    }


def window_s(rows: list[dict]) -> float | None:
    """The measured window: last end - first start, summed over the sittings (``segment``) of a resumed level
    and over the turns (``turn``) of an interleaved one (offsets count from each turn's start)."""
    by_segment: dict = {}
    for r in rows:
        by_segment.setdefault((r.get("segment") or 0, r.get("turn")), []).append(r)
    total, any_window = 0.0, False
    for seg_rows in by_segment.values():
        starts = [r["start_offset_s"] for r in seg_rows if r.get("start_offset_s") is not None]
        ends = [r["end_offset_s"] for r in seg_rows if r.get("end_offset_s") is not None]
        if starts and ends:
            total += max(ends) - min(starts)
            any_window = True
    return total if any_window else None


def _steady_part(rows: list[dict]) -> tuple[float, float] | None:
    """(output tokens, seconds) of one turn's steady part, or None when it has none to speak of.

    At concurrency N the steady part runs from the start of the N-th request (every slot busy) to the start
    of the last one (from there slots fall idle: the drain); the requests that end inside it, over its
    length, are the level's rate with every slot busy (guidellm's warm-up / cool-down, by request counts).
    It needs at least N requests ending inside it (one full turn of the slots), one of them successful; else None
    (the whole turn is taken: a steady part of failures alone would read 0 tokens/s for a model that answered)."""
    n = rows[0].get("concurrency") if rows else None
    starts = sorted(r["start_offset_s"] for r in rows if r.get("start_offset_s") is not None)
    if not n or len(starts) <= n:
        return None
    lo, hi = starts[int(n) - 1], starts[-1]
    inside = [r for r in rows if r.get("end_offset_s") is not None and lo < r["end_offset_s"] <= hi]
    if hi <= lo or len(inside) < n or not any(r["ok"] for r in inside):
        return None
    return float(sum(r["completion_tokens"] or 0 for r in inside if r["ok"])), hi - lo


def aggregate_throughput_tok_s(rows: list[dict]) -> float | None:
    """Output tokens per second of successful requests over the measured window: per turn (and sitting), its
    steady part when it has one (``_steady_part``: ramp-up and drain excluded, so that a level cut into
    interleaved turns reads the same as one blocked turn), else the whole turn (``window_s``)."""
    if not any(r["ok"] for r in rows):
        return None
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("segment") or 0, r.get("turn")), []).append(r)
    tokens = seconds = 0.0
    for group in groups.values():
        part = _steady_part(group)
        if part is None:
            w = window_s(group)
            if w is None:
                continue
            part = (float(sum(r["completion_tokens"] or 0 for r in group if r["ok"])), w)
        tokens, seconds = tokens + part[0], seconds + part[1]
    if seconds <= 0:
        return None
    return tokens / seconds


def infer_engine_wait(rows: list[dict]) -> None:
    """For an engine that serves one request at a time, in order, whose wait nobody measured: a request's
    service starts when the request sent before it ended. Its wait is set apart (``inferred``) and TTFT and
    E2E are counted from there, as for an engine that measures it. Rows of one level and one sitting; in place."""
    timed = sorted((r for r in rows if r.get("start_offset_s") is not None and r.get("engine_wait_source") is None),
                   key=lambda r: r["start_offset_s"])
    busy_until = None
    for r in timed:
        wait_s = max(0.0, busy_until - r["start_offset_s"]) if busy_until is not None else 0.0
        r["engine_wait_ms"], r["engine_wait_source"] = wait_s * MS_PER_S, "inferred"
        for key in ("ttft_ms", "e2e_ms"):
            if r.get(key) is not None:
                r[key] = max(0.0, r[key] - wait_s * MS_PER_S)
        if r.get("end_offset_s") is not None:
            busy_until = r["end_offset_s"] if busy_until is None else max(busy_until, r["end_offset_s"])


def output_tokens(rows: list[dict]) -> int:
    return sum(r["completion_tokens"] or 0 for r in rows if r["ok"])


def cpu_s_per_token(cpu_s: float | None, tokens: int) -> float | None:
    if cpu_s is None or tokens <= 0:
        return None
    return cpu_s / tokens


def token_count_source(rows: list[dict]) -> str | None:
    """The source of the successful requests' counts: one value, or "mixed:a,b" when they differ."""
    sources = sorted({r["token_count_source"] for r in rows if r["ok"] and r.get("token_count_source")})
    if not sources:
        return None
    return sources[0] if len(sources) == 1 else "mixed:" + ",".join(sources)


def outlier_flags(rows: list[dict], k: float = 1.5) -> list[bool]:
    """Per request: TTFT or TPOT beyond k*IQR of its level's successful requests (failures: False)."""
    flags = [False] * len(rows)
    idx = [i for i, r in enumerate(rows) if r["ok"]]
    for key in ("ttft_ms", "tpot_ms"):
        for i, flag in zip(idx, iqr_outliers([rows[i].get(key) for i in idx], k)):
            flags[i] = flags[i] or bool(flag)
    return flags


def most_common_error(rows: list[dict]) -> str | None:
    errors = Counter(r["error"] for r in rows if not r["ok"] and r.get("error"))
    if not errors:
        return None
    msg, n = errors.most_common(1)[0]
    return msg if n == 1 else f"{msg} (x{n})"


def tails_indicative(result: dict) -> bool:
    """True when p90/p95/p99 rest on fewer than 20 samples (show them as indicative only)."""
    return result.get("requests_ok", 0) < TAIL_MIN_SAMPLES
