"""Benchmark reports: one report object, interchangeable writers (CSV, Markdown ``benchmark_report.md``).

Model outputs never go into the Markdown (it is rendered by viewers); the CSV of requests carries
them as data.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.errors import UserError
from core.output import CSV_EOL, csv_frame, md_code, md_text
from core.metrics import DEFINITIONS, tails_indicative

DIST_KEYS = ("ttft_ms", "itl_ms", "e2e_ms", "decode_tokens_per_s", "completion_tokens", "queue_ms",
             "engine_wait_ms", "connect_ms")
SCALAR_KEYS = ("token_count_source", "engine_wait_source", "load_s", "rss_before_mb", "rss_after_load_mb",
               "peak_rss_mb", "weights_mb", "working_mb", "pid_source", "cpu_s_per_token", "throughput_tok_s",
               "window_s", "observer_cpu_s", "small_sample")


@dataclass
class BenchReport:
    run: dict
    results: list[dict]
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)
    sweeps: list[dict] = field(default_factory=list)   # length sweeps (core.bench.sweep.plan), one per model

    @property
    def run_id(self) -> str:
        return self.run["run_id"]


def build_report(run_id: str) -> BenchReport:
    from core.store import bench as db
    run = db.get_run(run_id)
    if run is None:
        raise UserError(f"no benchmark run {run_id!r}")
    from core.store.lengths import run_sweeps
    return BenchReport(run=run, results=db.run_summary(run_id), requests=db.run_requests(run_id, include_warmup=True),
                       sweeps=run_sweeps(run_id))


def flat_results(results: list[dict]) -> pd.DataFrame:
    """One row per model x concurrency level, distributions flattened (ttft_ms_p50, ...)."""
    rows = []
    for r in results:
        row = {k: r[k] for k in ("model", "backend", "concurrency", "status", "error", "requests_ok", "requests_failed")}
        for k in DIST_KEYS:
            for stat in ("mean", "p50", "p90", "p95", "p99"):
                row[f"{k}_{stat}"] = (r.get(k) or {}).get(stat)
        for k in SCALAR_KEYS:
            row[k] = r.get(k)
        rows.append(row)
    return pd.DataFrame(rows)


def to_csv(report: BenchReport) -> str:
    """The summary (one row per model x concurrency level) as CSV."""
    df = flat_results(report.results)
    df.insert(0, "run_id", report.run_id)
    return csv_frame(df).to_csv(index=False, quoting=csv.QUOTE_MINIMAL, lineterminator=CSV_EOL)


def requests_csv(report: BenchReport) -> str:
    """Every request of the run as CSV (warm-ups flagged, failures with their error)."""
    df = report.requests.copy()
    if "chunk_gaps_ms" in df:
        df["chunk_gaps_ms"] = [" ".join(f"{g:.3f}" for g in (v if v is not None else [])) for v in df["chunk_gaps_ms"]]
    return csv_frame(df).to_csv(index=False, lineterminator=CSV_EOL)


def _n(v, digits=1) -> str:
    """A stored number for the Markdown report (anything else stored there is escaped: md_text)."""
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return md_text(v)


def to_markdown(report: BenchReport) -> str:
    """``benchmark_report.md``: settings, environment, summary table, failures, definitions."""
    run, out = report.run, io.StringIO()
    settings = run.get("settings") or {}
    env = run.get("environment") or {}
    w = lambda s="": out.write(s + "\n")  # noqa: E731
    m = md_text     # every stored value is escaped: a run id, a status or a setting can hold anything
    if not isinstance(settings, dict):
        settings = {}
    if not isinstance(env, dict):
        env = {}
    s = lambda k: m(settings.get(k))  # noqa: E731
    w(f"# Benchmark report — run {m(run['run_id'])}")
    w()
    w(f"- Status: **{m(run['status'])}**" + (f" ({m(run['note'])})" if run.get("note") else ""))
    w(f"- Started: {m(run.get('created_at'))}, finished: {m(run.get('finished_at') or '–')}")
    w(f"- Prompt set: {md_code(run.get('prompt_set'))} ({len(run.get('prompts') or [])} prompts, "
      f"sha256 {md_code(str(run.get('prompt_set_hash') or '')[:16] + '…')})")
    w(f"- Settings: rounds {s('rounds')}, warm-up {s('warmup')} (excluded), max tokens "
      f"{s('max_tokens')}, temperature {s('temperature')}, seed {s('seed')}, "
      f"concurrency {s('concurrency')}, timeout {s('timeout_s')} s, "
      f"streaming {'on' if settings.get('stream', True) else 'off'}")
    w(f"- Machine: {md_text(env.get('cpu'))}, {md_text(env.get('cores_logical'))} logical cores, {md_text(env.get('ram_gb'))} GB RAM, "
      f"{md_text(env.get('os'))}, Python {md_text(env.get('python'))}")
    pk = env.get("packages") or {}
    if pk and isinstance(pk, dict):
        w("- Versions: " + ", ".join(f"{md_text(k)} {md_text(v)}" for k, v in pk.items() if v))
    w()
    w("## Results")
    w()
    w("| model | engine | conc. | status | ok / failed | TTFT p50 (ms) | TTFT p95 (ms) | TPOT p50 (ms/token) "
      "| decode speed p50 (tok/s per request) | E2E p50 (ms) | E2E p95 (ms) | aggregate throughput (tok/s) "
      "| engine wait p50 (ms) | tokens p50 (source) | load (s) | runtime / weights / working (MB) | peak RSS (MB) "
      "| CPU s/token | observer CPU (s) |")
    w("|" + "---|" * 19)
    for r in report.results:
        g = lambda k, s="p50": (r.get(k) or {}).get(s)  # noqa: E731
        mark = "*" if tails_indicative(r) and r["requests_ok"] else ""
        wait = _n(g("engine_wait_ms")) + (f" ({m(r['engine_wait_source'])})" if r.get("engine_wait_source") else "")
        mem = " / ".join(_n(r.get(k), 0) for k in ("rss_before_mb", "weights_mb", "working_mb"))
        w(f"| {m(r['model'])} | {m(r['backend'])} | {_n(r['concurrency'])} | {m(r['status'])} "
          f"| {_n(r['requests_ok'])} / {_n(r['requests_failed'])} "
          f"| {_n(g('ttft_ms'))} | {_n(g('ttft_ms', 'p95'))}{mark} | {_n(g('itl_ms'), 2)} | {_n(g('decode_tokens_per_s'))} "
          f"| {_n(g('e2e_ms'))} | {_n(g('e2e_ms', 'p95'))}{mark} | {_n(r['throughput_tok_s'])} | {wait} "
          f"| {_n(g('completion_tokens'), 0)} ({m(r['token_count_source'] or '–')}) | {_n(r['load_s'], 2)} "
          f"| {mem} | {_n(r['peak_rss_mb'], 0)} | {_n(r['cpu_s_per_token'], 4)} | {_n(r.get('observer_cpu_s'), 3)} |")
    w()
    if any("inferred" in (r.get("engine_wait_source") or "") for r in report.results):
        w("Engine wait marked *inferred*: the engine serves one request at a time and does not say when it took a "
          "request; its wait is inferred from the requests' times (served in order) and kept out of TTFT and E2E.")
        w()
    found = sorted({str(r.get("pid_source")) for r in report.results if r.get("pid_source")})
    if found:
        w("Memory and CPU measured on the model's process, found by: " + ", ".join(m(f) for f in found)
          + " (launched = the app started it; port = the process listening on the endpoint's port; "
            "user = --server-pid; unknown = not measured).")
        w()
    if any(tails_indicative(r) and r["requests_ok"] for r in report.results):
        w("\\* fewer than 20 successful requests: p95 is indicative only.")
        w()
    _conditions_section(report, w)
    failed = [r for r in report.results if r["status"] != "ok" or r["requests_failed"]]
    if failed:
        w("## Failures")
        w()
        for r in failed:
            w(f"- {m(r['model'])} \\[{m(r['backend'])}\\] at concurrency {_n(r['concurrency'])}: "
              f"{_n(r['requests_failed'])} failed requests" + (f"; {m(r['error'])}" if r.get("error") else ""))
        w()
    if report.sweeps:
        from core.bench.sweep.plan import markdown_section
        w(markdown_section(report.sweeps))
    notes = sorted({n for m in run.get("models") or [] for n in (m.get("notes") or [])})
    w("## How to read these numbers")
    w()
    for text in DEFINITIONS.values():
        w(f"- {text}")
    for n in notes:
        w(f"- {m(n)}")
    return out.getvalue()


def _conditions_section(report: BenchReport, w) -> None:
    """Order, noisy levels, energy, paired comparisons (core.bench.conditions.lines)."""
    from core.bench.conditions.lines import energy_lines, noisy_lines, order_line, pair_lines
    from core.bench.conditions.paired import run_pairs
    lines = [order_line((report.run.get("environment") or {}).get("schedule"))]
    lines += [f"Noisy: {x}" for x in noisy_lines(report.results, md_text)]
    lines += [f"Energy: {x}" for x in energy_lines(report.results, md_text)]
    lines += [f"Paired: {x}" for x in pair_lines(run_pairs(report.run_id), md_text)]
    if any(lines):
        w("## Conditions: order, noise, energy, paired comparisons")
        w()
        for line in filter(None, lines):
            w(f"- {line}")
        w()


def write_report(run_id: str, out_dir: str | Path) -> dict[str, Path]:
    """Write benchmark_report.md, benchmark_summary.csv and benchmark_requests.csv into out_dir."""
    report = build_report(run_id)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": out_dir / "benchmark_report.md", "summary_csv": out_dir / "benchmark_summary.csv",
                 "requests_csv": out_dir / "benchmark_requests.csv"}
        paths["markdown"].write_text(to_markdown(report), encoding="utf-8")
        paths["summary_csv"].write_text(to_csv(report), encoding="utf-8", newline="")
        paths["requests_csv"].write_text(requests_csv(report), encoding="utf-8", newline="")
    except OSError as exc:
        raise UserError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from exc
    return paths
