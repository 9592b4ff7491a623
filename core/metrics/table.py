"""The table of metrics: one record per number, its name, unit, label and definition beside its formula.

A level's result (model x engine x concurrency) is compiled here, in one place, from its request rows and
the level's stored figures (``LevelInputs``): ``compile_level`` runs every record's formula once. The
writers (the CLI's JSON, the CSV, the Markdown report, the page's level table, docs/metrics.md) walk
``METRICS``; none names a metric, so a new number is one record here.

Per-request numbers are derived once, in ``core.metrics.formulas.request_row``; records of ``scope``
"request" and "sweep" describe those and the length sweep's for the documentation and labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from core.metrics.formulas import (
    aggregate_throughput_tok_s, most_common_error, per_s, token_count_source, window_s,
)
from core.stats import TAIL_MIN_SAMPLES, summary

STATUSES = ("ok", "interrupted", "failed")


@dataclass(frozen=True)
class LevelInputs:
    """What a level's numbers are computed from: its measured request rows (warm-ups dropped), the
    successful ones, and the level's stored figures (``core.store.bench`` run_models: load, memory, CPU,
    noise, energy)."""
    rows: tuple[Mapping, ...]
    ok: tuple[Mapping, ...]
    load: Mapping


@dataclass(frozen=True)
class Metric:
    """One number. ``name`` is its one name (JSON key, CSV column stem, a criterion's metric); ``label`` is
    what a person reads, unit included; ``stats``: for a distribution, the statistics the level table and
    the report show (the JSON and CSV keep all of mean/p50/p90/p95/p99); ``digits``: rounding for reading
    (the exports keep full precision); ``shown``: a column of the level table and the report; ``flat``: one CSV
    cell (a distribution is one cell per statistic)."""
    name: str
    unit: str
    label: str
    definition: str | None = None
    formula: Callable[[LevelInputs], object] | None = None
    scope: str = "level"              # level | request | sweep
    stats: tuple[str, ...] = ()
    digits: int | None = None
    shown: bool = True
    flat: bool = True                 # a value the CSV holds in one cell (False: a nested record, JSON only)

    @property
    def distribution(self) -> bool:
        return bool(self.stats)

    def cells(self) -> tuple[str | None, ...]:
        """The statistics shown for a distribution, else (None,): one column of the level table each."""
        return self.stats or (None,)

    def value(self, result: Mapping, stat: str | None = None):
        """This metric's value (or one statistic of it) in a level result."""
        v = result.get(self.name)
        return (v or {}).get(stat) if stat else v

    def column(self, stat: str | None = None) -> str:
        """The heading of this metric, or of one of its statistics ("TTFT p95 (ms)"), in the level table and the
        report."""
        if not stat:
            return self.label
        head, paren, unit = self.label.partition(" (")
        return f"{head} {stat}{paren}{unit}"


def _diff(a, b):
    return (a - b) if a is not None and b is not None else None


def _from_load(key: str) -> Callable[[LevelInputs], object]:
    return lambda lv: lv.load.get(key)


def _sources(lv: LevelInputs) -> str | None:
    return ",".join(sorted({r.get("engine_wait_source") for r in lv.ok if r.get("engine_wait_source")})) or None


def _throughput(lv: LevelInputs):
    value = aggregate_throughput_tok_s(list(lv.rows)) if lv.rows else None
    return value if value is not None else lv.load.get("throughput_tok_s")


DIST_STATS = ("mean", "p50", "p90", "p95", "p99")   # what core.stats.summary gives, and the CSV's columns
P50_P95 = ("p50", "p95")
P50 = ("p50",)

METRICS: tuple[Metric, ...] = (
    Metric("ttft_ms", "ms", "TTFT (ms)",
           "TTFT: first chunk carrying output text minus request start; queue delay is not inside it.",
           lambda lv: summary(r["ttft_ms"] for r in lv.ok), stats=P50_P95, digits=1),
    Metric("itl_ms", "ms/token", "TPOT (ms/token)",
           "TPOT (= mean inter-token latency): (E2E - TTFT) / (completion tokens - 1), for 2 tokens or more.",
           lambda lv: summary(r["tpot_ms"] for r in lv.ok), stats=P50, digits=1),
    Metric("e2e_ms", "ms", "E2E (ms)",
           "E2E latency: end of the response ([DONE] or the finish reason) minus request start.",
           lambda lv: summary(r["e2e_ms"] for r in lv.ok), stats=P50_P95, digits=1),
    Metric("decode_tokens_per_s", "tok/s", "decode speed (tok/s per request)",
           "Decode speed: 1 / TPOT, per request (tokens per second after the first token); not aggregate "
           "throughput.",
           lambda lv: summary(per_s(r["tpot_ms"]) for r in lv.ok), stats=P50, digits=1),
    Metric("completion_tokens", "tokens", "tokens",
           "Completion tokens: from the runtime's usage, else the model's tokenizer, else SSE chunks (the source "
           "is shown); never the prompt's tokens.",
           lambda lv: summary(r["completion_tokens"] for r in lv.ok), stats=P50, digits=0),
    Metric("token_count_source", "", "token source",
           "Token source: where the successful requests' completion tokens came from (usage, tokenizer or chunks); "
           "\"mixed:a,b\" when they differ.",
           lambda lv: token_count_source(list(lv.rows))),
    Metric("queue_ms", "ms", "queue wait (ms)",
           "Queue wait: from the moment a request was ready to go (its turn) until it got a free slot.",
           lambda lv: summary(r.get("queue_ms") for r in lv.ok), stats=P50, digits=1),
    Metric("engine_wait_ms", "ms", "engine wait (ms)",
           "Engine wait: for an engine that serves one request at a time, the time a request waited for it; kept "
           "out of TTFT and E2E for every engine. Measured (Foundry Local worker) or inferred from the requests' "
           "times (llama-cpp-python server: served in order).",
           lambda lv: summary(r.get("engine_wait_ms") for r in lv.ok), stats=P50, digits=1),
    Metric("engine_wait_source", "", "engine wait",
           "Engine wait source: measured (the engine says when it took the request) or inferred (served in order).",
           _sources),
    Metric("connect_ms", "ms", "connect (ms)",
           "Connect: TCP/TLS set-up when a request had to open a connection; kept out of TTFT.",
           lambda lv: summary(r.get("connect_ms") for r in lv.ok), stats=P50, digits=1),
    Metric("load_s", "s", "load (s)",
           "Cold load: time to load the model in its fresh process (llama.cpp: server start until it answers).",
           _from_load("load_s"), digits=2),
    Metric("rss_before_mb", "MB", "runtime baseline (MB)",
           "Runtime baseline: resident memory of the model's process before the model loads.",
           _from_load("rss_before_mb"), digits=0),
    Metric("rss_after_load_mb", "MB", "RSS after load (MB)",
           "RSS after load: resident memory of the model's process once the model is loaded.",
           _from_load("rss_after_load_mb"), digits=0,
           shown=False),
    Metric("peak_rss_mb", "MB", "peak RSS (MB)",
           "Memory: resident memory of the process that runs the model (worker or server): runtime baseline "
           "(before load), weights (after load - before), working memory (peak VmHWM - after load). An endpoint's "
           "server is found by the process listening on its port, or named with --server-pid. Unknown when the "
           "app does not know that process, never 0.",
           _from_load("peak_rss_mb"), digits=0),
    Metric("weights_mb", "MB", "weights (MB)", "Weights: RSS after load minus RSS before load.",
           lambda lv: _diff(lv.load.get("rss_after_load_mb"), lv.load.get("rss_before_mb")), digits=0),
    Metric("working_mb", "MB", "working memory (MB)", "Working memory: peak RSS minus RSS after load.",
           lambda lv: _diff(lv.load.get("peak_rss_mb"), lv.load.get("rss_after_load_mb")), digits=0),
    Metric("pid_source", "", "process found by",
           "Process found by: launched (the app started it), port (the process listening on the endpoint's port), "
           "user (--server-pid) or unknown (memory and CPU not measured).",
           _from_load("pid_source")),
    Metric("cpu_s_per_token", "CPU s/token", "CPU s/token",
           "CPU seconds of the model's process over the measured window / output tokens (a proxy for energy on "
           "laptops).",
           _from_load("cpu_s_per_token"), digits=4),
    Metric("throughput_tok_s", "tok/s", "aggregate throughput (tok/s)",
           "Aggregate throughput: output tokens of successful requests / (last end - first start) of the measured "
           "window, per concurrency level; not decode speed.",
           _throughput, digits=1),
    Metric("window_s", "s", "measured window (s)",
           "Measured window: last end minus first start of the level's measured requests, summed over the sittings "
           "of a resumed level and the turns of an interleaved one.",
          
           lambda lv: window_s(list(lv.rows)) if lv.rows else lv.load.get("window_s"), shown=False),
    Metric("observer_cpu_s", "s", "observer CPU (s)",
           "Observer CPU: CPU seconds of the app's own process over the measured window; it should stay near zero "
           "so the app does not compete with the model.",
           _from_load("observer_cpu_s"), digits=3),
    Metric("small_sample", "", "small sample",
           f"Small sample: fewer than {TAIL_MIN_SAMPLES} successful requests; p90/p95/p99 are indicative only.",
           lambda lv: len(lv.ok) < TAIL_MIN_SAMPLES, shown=False),
    # the conditions of the level (core.bench.conditions.noise, core.bench.conditions.energy): None when not measured
    Metric("noisy", "", "noisy",
           "Noisy: other programs used the machine enough during the level to disturb it (see noise).",
           _from_load("noisy"), shown=False),
    Metric("noise", "", "noise",
           "Noise: what else used the machine during the level (other programs' CPU, the reason it is noisy).",
           _from_load("noise"), shown=False, flat=False),
    Metric("energy_j_per_request", "J", "energy per request (J)",
           "Energy per request: joules over the level / its measured requests (RAPL, or a labelled estimate).",
           _from_load("energy_j_per_request"),
           shown=False),
    Metric("energy_j_per_token", "J", "energy per token (J)",
           "Energy per token: joules over the level / its output tokens.", _from_load("energy_j_per_token"),
           shown=False),
    Metric("energy_estimate", "", "energy estimated",
           "Energy estimated: the energy figures are an estimate (no energy counter), with its source.",
           _from_load("energy_estimate"), shown=False),
    Metric("energy", "", "energy",
           "Energy: the level's energy record (source, joules, window).",
           _from_load("energy"), shown=False, flat=False),
    # per request (core.metrics.formulas.request_row) and the length sweep (core.bench.sweep.fit)
    Metric("e2e_output_tokens_per_s", "tokens/s", "E2E output speed (tokens/s, tokens/E2E)",
           "E2E output speed: completion tokens / E2E, per request.", scope="request"),
    Metric("prefill_tokens_per_s", "tokens/s", "prefill speed (prompt tokens/s, prompt tokens / TTFT)",
           "Prefill speed: prompt tokens (the engine's count, else the model's tokenizer) / TTFT, per request; TTFT "
           "includes the first decode step.", scope="sweep"),
    Metric("time_to_notes_ms", "ms", "time to notes (ms, TTFT(n) + (out - 1) x TPOT(n) from the fitted curves)",
           "Time to notes: TTFT(n) + (out - 1) x TPOT(n) at a target prompt length n and output length out, from "
           "a + b n + c n^2 (b, c >= 0) fitted by least squares to the length sweep's requests; extrapolated when n "
           "lies beyond the longest prompt measured.", scope="sweep"),
    Metric("context_window", "tokens", "context window (tokens, from the model's metadata)",
           "Context window: the most tokens (prompt and output) the model takes, from its metadata.", scope="sweep"),
    Metric("kv_cache_mb", "MB", "KV cache (MB, bytes per token x the run's context setting)",
           "KV cache share of memory: 2 (K, V) x layers x KV heads x head size x dtype bytes per token, times the "
           "context the run loaded the model with (Foundry max_length, llama.cpp n_ctx).", scope="sweep"),
)

# What a level's result says besides its metrics (the JSON contract starts with these, in this order).
IDENTITY = ("model", "backend", "concurrency", "status", "error", "requests_ok", "requests_failed")
LEVEL_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS if m.scope == "level")
SHOWN: tuple[Metric, ...] = tuple(m for m in LEVEL_METRICS if m.shown)
BY_NAME: Mapping[str, Metric] = MappingProxyType({m.name: m for m in METRICS})
# The JSON result of one model x concurrency level (the CLI contract, in this order).
RESULT_KEYS: tuple[str, ...] = IDENTITY + tuple(m.name for m in LEVEL_METRICS)
# Human labels and one-line definitions (page, report, docs/metrics.md): read from the records.
LABELS: Mapping[str, str] = MappingProxyType({m.name: m.label for m in METRICS})
DEFINITIONS: Mapping[str, str] = MappingProxyType({
    **{m.name: m.definition for m in METRICS if m.definition},
    "requests": "Warm-up requests are excluded; latency statistics use successful requests only; a stream that ends "
                "without a finish reason is a failed request; failed requests are kept with their error.",
})


class _LevelBase:
    """Shared behaviour of ``LevelResult`` (its fields are IDENTITY and one per level metric)."""

    def to_dict(self) -> dict:
        """The JSON contract: ``RESULT_KEYS`` in order."""
        return {k: getattr(self, k) for k in RESULT_KEYS}


LevelResult = make_dataclass(
    "LevelResult",
    [("model", str), ("backend", str), ("concurrency", int), ("status", str), ("error", "str | None"),
     ("requests_ok", int), ("requests_failed", int)]
    + [(m.name, object, field(default=None)) for m in LEVEL_METRICS],
    bases=(_LevelBase,), frozen=True, namespace={"__doc__": "The result of one model x concurrency level: its "
                                                 "identity and one field per level metric of ``METRICS``."},
)


def compile_level(rows: Iterable[Mapping], *, model: str, backend: str, concurrency: int, status: str = "ok",
                  error: str | None = None, load: Mapping | None = None) -> "LevelResult":
    """The result of one model x concurrency level from its stored request rows (warm-ups dropped).

    ``load``: the level's stored run_models numbers (load_s, rss_*_mb, peak_rss_mb, cpu_s_per_token,
    throughput_tok_s, observer_cpu_s, pid_source); the throughput is recomputed from the rows when they
    carry offsets. ``status``: ok | failed | interrupted (a level that did not end: its numbers are those
    of the requests that finished).
    """
    rows = tuple(r for r in rows if not r.get("warmup"))
    ok = tuple(r for r in rows if r["ok"])
    if status in ("ok", "interrupted") and rows and not ok:
        status, error = "failed", error or most_common_error(list(rows))
    elif status in ("ok", "interrupted") and not rows:
        status, error = ("interrupted" if status == "interrupted" else "failed"), error or "no request was measured"
    lv = LevelInputs(rows, ok, MappingProxyType(dict(load or {})))
    return LevelResult(model=model, backend=backend, concurrency=int(concurrency),
                       status=status if status in ("ok", "interrupted") else "failed", error=error,
                       requests_ok=len(ok), requests_failed=len(rows) - len(ok),
                       **{m.name: m.formula(lv) for m in LEVEL_METRICS})


def level_result(rows: Iterable[Mapping], **kwargs) -> dict:
    """``compile_level(...)`` in the JSON contract's shape (``RESULT_KEYS`` in order)."""
    return compile_level(rows, **kwargs).to_dict()
