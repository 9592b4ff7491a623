"""`python -m core bench`: the benchmark from the command line (--json is the contract other tools read).

    python -m core bench --prompts FILE [--model ID ...] [--endpoint URL] [--api-key-env VAR]
        [--server-pid PID] [--config models.json] [--rounds N] [--warmup N] [--concurrency N[,N...]]
        [--max-tokens N] [--temperature T] [--seed S] [--timeout SECONDS] [--db PATH] [--json OUT]
    python -m core bench --resume RUN_ID [--prompts FILE] [--db PATH] [--json OUT]

Seed compatibility with the workshop: BENCH_MODELS (comma-separated, when no --model),
BENCH_ROUNDS (default rounds), BENCH_STREAM (0 = non-streaming requests to HTTP endpoints: no TTFT;
Foundry Local always streams),
FOUNDRY_LOCAL_ENDPOINT (the endpoint when no --endpoint is given).
Exit codes: 0 run completed (even with failed requests); 2 bad input (one line); 130 cancelled
with Ctrl-C and 3 a model process died (the run is stored as interrupted, finished requests kept).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from core.errors import UserError
from core.output import term_text

EXIT_CANCELLED = 130
EXIT_INTERRUPTED = 3


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency levels must be whole numbers of at least 1")
    return values


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"{name}={value!r} is not a whole number")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark models: latency, throughput, memory",
        description="Benchmark models on a prompt set: TTFT, TPOT, E2E latency, throughput per concurrency "
                    "level, memory and CPU of the model's process. Every request is stored in the database.",
        epilog="Environment: BENCH_MODELS (models when no --model), BENCH_ROUNDS (default rounds), "
               "BENCH_STREAM=0 (HTTP endpoints answer without streaming: no TTFT), "
               "FOUNDRY_LOCAL_ENDPOINT (the endpoint when no --endpoint). "
               "Exit 0 when the run completes (even if requests failed), 2 on bad input, "
               "130 when cancelled (Ctrl-C), 3 when a model process died mid-run.")
    p.add_argument("--prompts", metavar="FILE",
                   help="JSON prompt set: a list of strings, or of objects {id, text, tags} (with --resume: "
                        "checked against the run's prompt set)")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="run only the requests a stored run that did not end is missing, with its settings and "
                        "models; refused when the prompt set or the model files changed")
    p.add_argument("--server-pid", type=int, metavar="PID",
                   help="the process serving --endpoint on this machine, when it cannot be found by its port "
                        "(measures its memory and CPU)")
    p.add_argument("--model", action="append", default=None, metavar="ID",
                   help="model id or alias (repeat, or comma-separate). Without --endpoint: a Foundry Local "
                        "model, or the llama.cpp starter (smollm2-135m-instruct-gguf)")
    p.add_argument("--endpoint", metavar="URL", help="OpenAI-compatible endpoint serving the models")
    p.add_argument("--api-key-env", metavar="VAR", help="NAME of the environment variable holding the API key")
    p.add_argument("--config", metavar="models.json",
                   help="workshop-style models file {alias: {capabilities, size_mb}}: the models to run")
    p.add_argument("--rounds", type=int, default=None, metavar="N", help="rounds over the prompt set (default 3, or BENCH_ROUNDS)")
    p.add_argument("--warmup", type=int, default=1, metavar="N", help="warm-up requests per level, excluded (default 1)")
    p.add_argument("--concurrency", type=_int_list, default=[1], metavar="N[,N...]",
                   help="concurrency levels, e.g. 1,2,4,8 (default 1)")
    p.add_argument("--max-tokens", type=int, default=256, metavar="N", help="max output tokens (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T", help="default 0 (deterministic)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="default 0")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="per request, also for a stalled model: a Foundry Local worker that does not stop when cancelled is killed (default 120)")
    p.add_argument("--order", choices=("interleaved", "blocked"), default="interleaved",
                   help="interleaved (default): round by round, models in rotating order, kept loaded (blocked "
                        "when they do not fit in memory together); blocked: all of one model, then the next")
    p.add_argument("--lengths", nargs="?", const="prompts", default=None, metavar="N[,N...]",
                   help="length sweep: meeting transcripts of exactly these prompt token counts (each model's own "
                        "tokenizer), e.g. 512,2048,4096,6000; alone: 512, 2048, 4096 below the target, then the target; alone with --prompts FILE: "
                        "your own long prompts. "
                        "Fits TTFT/TPOT against prompt length and gives the time to notes")
    p.add_argument("--target-prompt", type=int, default=6000, metavar="N",
                   help="with --lengths: prompt tokens of the meeting to predict the time to notes for (default 6000)")
    p.add_argument("--target-output", type=int, default=300, metavar="N",
                   help="with --lengths: output tokens of the notes (default 300)")
    p.add_argument("--context", type=int, default=None, metavar="N",
                   help="with --lengths: the context to load each model with (Foundry max_length, llama.cpp n_ctx; "
                        "default: what the longest prompt that fits needs, capped at the model's window)")
    p.add_argument("--db", metavar="PATH", help="store: DuckDB file or DuckLake URL (default data/slm_selector.duckdb, or SLM_DB)")
    p.add_argument("--json", metavar="OUT", help='write {"run_id", "schedule", "results": [...], "paired": [...], "timeline": {...}} to OUT '
                                                 '(with --lengths: and "lengths": one sweep per model)')
    p.set_defaults(func=run)

    r = subparsers.add_parser(
        "bench-report", help="write benchmark_report.md and CSVs for a run",
        description="Write benchmark_report.md, benchmark_summary.csv and benchmark_requests.csv for a stored run.")
    r.add_argument("run_id", nargs="?", help="run id (default: the latest run)")
    r.add_argument("--out", default=".", metavar="DIR", help="folder to write into (default: current folder)")
    r.add_argument("--db", metavar="PATH", help="store: DuckDB file or DuckLake URL (default data/slm_selector.duckdb, or SLM_DB)")
    r.set_defaults(func=report)


def _model_names(args, config: dict | None) -> list[str]:
    names: list[str] = []
    for item in args.model or []:
        names += [x.strip() for x in item.split(",") if x.strip()]
    if not names and os.environ.get("BENCH_MODELS", "").strip():
        names = [x.strip() for x in os.environ["BENCH_MODELS"].split(",") if x.strip()]
    if not names and config:
        names = list(config)
    if not names:
        raise UserError("no model given: use --model, BENCH_MODELS or --config models.json")
    return list(dict.fromkeys(names))


def resolve_specs(names: list[str], endpoint: str | None, api_key_env: str | None, config: dict | None,
                  server_pid: int | None = None):
    from core.bench.run.inputs import ModelSpec
    config = config or {}
    specs = []
    if endpoint:
        from core.catalog.endpoints import normalize_base_url
        from core.engines.http import check_endpoint
        base = normalize_base_url(endpoint)
        if api_key_env:
            from core.catalog.endpoints import api_key
            api_key(api_key_env)    # UserError when the variable is not set
        served = [m["id"] for m in check_endpoint(base, api_key_env)]
        for name in names:
            if served and name not in served:
                known = ", ".join(served[:12])
                raise UserError(f"unknown model {name!r} at {base} (it serves: {known})")
            extra = config.get(name, {})
            specs.append(ModelSpec(model=name, backend="openai", label=name, endpoint=base, api_key_env=api_key_env,
                                   disk_mb=extra.get("size_mb"), server_pid=server_pid))
        return specs
    from core.catalog.models import list_models, resolve_model
    rows = list_models(include_catalog=False).models
    for name in names:
        row = resolve_model(name, rows)
        spec = ModelSpec.from_row(row)
        spec.label = name
        if spec.disk_mb is None and config.get(name, {}).get("size_mb") is not None:
            spec.disk_mb = config[name]["size_mb"]
        specs.append(spec)
    return specs


class CliProgress:
    """Prints progress to stderr: phase changes at once, counts at most every 2 seconds."""

    def __init__(self, stream=None, every_s: float = 2.0):
        self.stream, self.every_s = stream, every_s
        self._last = 0.0
        self._phases: dict[int, tuple] = {}

    def _say(self, text: str) -> None:
        print(term_text(text), file=self.stream or sys.stderr, flush=True)

    def on_start(self, progress) -> None:
        self._say(f"run {progress.run_id}: {len(progress.models)} model(s), {progress.total} requests planned")

    def on_update(self, progress, m) -> None:
        key = (m.phase, m.concurrency)
        changed = self._phases.get(id(m)) != key
        now = time.monotonic()
        if not changed and now - self._last < self.every_s:
            return
        self._phases[id(m)] = key
        self._last = now
        level = f" c={m.concurrency}" if m.concurrency else ""
        eta = f", ETA {m.eta_s:.0f}s" if m.eta_s and m.phase in ("warmup", "running") else ""
        err = f": {m.error}" if m.error and m.phase in ("failed", "interrupted") else ""
        self._say(f"  {m.label} [{m.backend}]{level} {m.phase} {m.done}/{m.total}"
                  f"{f', {m.failed} failed' if m.failed else ''}{eta}{err}")

    def on_complete(self, outcome) -> None:
        pass


def _fmt(v, digits=1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}"


def print_results(results: list[dict], stream=None) -> None:
    stream = stream or sys.stdout
    head = f"{'model':32} {'backend':9} {'conc':>4} {'ok':>4} {'fail':>4} {'TTFT p50 ms':>11} {'TPOT p50 ms':>11} " \
           f"{'E2E p50 ms':>10} {'tok/s agg':>9} {'peak MB':>8}"
    print(head, file=stream)
    for r in results:
        p50 = lambda k: (r.get(k) or {}).get("p50")  # noqa: E731
        print(f"{term_text(r['model'])[:32]:32} {r['backend']:9} {r['concurrency']:>4} {r['requests_ok']:>4} "
              f"{r['requests_failed']:>4} {_fmt(p50('ttft_ms')):>11} {_fmt(p50('itl_ms'), 2):>11} "
              f"{_fmt(p50('e2e_ms')):>10} {_fmt(r['throughput_tok_s']):>9} {_fmt(r['peak_rss_mb'], 0):>8}"
              + (f"  {r['status']}: {term_text(r['error'])}" if r["status"] != "ok" else "")
              + (f"  NOISY: {(r.get('noise') or {}).get('reason')}" if r.get("noisy") else ""), file=stream)
    print("tok/s agg = aggregate throughput (output tokens / measured window), not decode speed (1/TPOT)",
          file=stream)



def print_pairs(pairs: list[dict], stream=None) -> None:
    """One line per pair of candidates: the decode-speed sentence and the TTFT and E2E ratios."""
    from core.bench.conditions.lines import pair_lines
    for line in pair_lines(pairs, term_text):
        print(line, file=stream or sys.stdout)


def run(args) -> int:
    from core.bench.run.inputs import Settings, load_models_config, load_prompts

    if args.server_pid is not None:
        from core.engines.base import process_stats
        if args.server_pid < 1 or process_stats(args.server_pid) is None:
            raise UserError(f"--server-pid: server process {args.server_pid} not found on this machine")
    extra: dict = {}
    if args.resume:
        from core.bench.run.resume import plan_resume, resume_runner_kwargs
        resumed = plan_resume(args.resume, load_prompts(args.prompts) if args.prompts else None)
        specs, prompt_set, settings = resumed.models, resumed.prompt_set, resumed.settings
        extra = resume_runner_kwargs(resumed)
        print(f"resuming run {args.resume}: {resumed.missing} requests missing", file=sys.stderr, flush=True)
    elif args.lengths is not None:
        return _run_lengths(args)
    else:
        if not args.prompts:
            raise UserError("no prompt set given: use --prompts FILE (or --resume RUN_ID)")
        prompt_set = load_prompts(args.prompts)
        config = load_models_config(args.config) if args.config else None
        rounds = args.rounds if args.rounds is not None else _env_int("BENCH_ROUNDS", 3)
        stream = os.environ.get("BENCH_STREAM", "1").strip().lower() not in ("0", "false", "no", "off")
        settings = Settings(rounds=rounds, warmup=args.warmup, max_tokens=args.max_tokens,
                            temperature=args.temperature, seed=args.seed, concurrency=args.concurrency,
                            timeout_s=args.timeout, stream=stream, order=args.order).validate()
        from core.bench.run.bounds import check_requests
        check_requests(settings.rounds, len(prompt_set.prompts))       # before any endpoint is asked
        endpoint = args.endpoint or os.environ.get("FOUNDRY_LOCAL_ENDPOINT", "").strip() or None
        specs = resolve_specs(_model_names(args, config), endpoint, args.api_key_env, config, args.server_pid)
    return execute(specs, prompt_set, settings, extra, args.json)


def execute(specs, prompt_set, settings, extra: dict, json_out: str | None) -> int:
    """Run a benchmark from the command line (Ctrl-C cancels, progress on stderr), print its results, write
    --json; the exit code (0, EXIT_CANCELLED, EXIT_INTERRUPTED). ``extra``: the Runner's run_id/resume kwargs."""
    from core.bench.run.runner import run_benchmark
    from core.output import write_json
    from core.store import bench as db

    cancel = threading.Event()
    state = {"sigint": 0}

    def on_sigint(signum, frame):
        state["sigint"] += 1
        if state["sigint"] > 1:
            raise KeyboardInterrupt
        cancel.set()
        print("cancelling: finishing the requests in flight (Ctrl-C again to stop at once)", file=sys.stderr,
              flush=True)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if in_main else None
    try:
        outcome = run_benchmark(specs, prompt_set, settings, progress=CliProgress(), cancel=cancel, **extra)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    results = db.run_summary(outcome.run_id)
    print_results(results)
    from core.bench.conditions.paired import run_pairs
    pairs = run_pairs(outcome.run_id)
    print_pairs(pairs)
    if json_out:
        schedule = ((db.get_run(outcome.run_id) or {}).get("environment") or {}).get("schedule")
        from core.bench.run.timeline import run_timeline
        write_json(json_out, {"run_id": outcome.run_id, "schedule": schedule, "results": results, "paired": pairs,
                              "timeline": run_timeline(outcome.run_id)})
    if outcome.status == "interrupted":
        kept = sum(r["requests_ok"] + r["requests_failed"] for r in results)
        why = "cancelled" if cancel.is_set() else outcome.reason
        print(f"error: run {outcome.run_id} interrupted ({why}); {kept} finished requests kept", file=sys.stderr)
        return EXIT_CANCELLED if cancel.is_set() else EXIT_INTERRUPTED
    print(f"run {outcome.run_id} completed", file=sys.stderr)
    return 0


def _run_lengths(args) -> int:
    """`bench --lengths ...`: a length sweep (core.bench.sweep.plan)."""
    from core.bench.run.inputs import Settings, load_models_config, load_prompts
    from core.bench.sweep.plan import parse_lengths, run_sweep, sweep_lines
    from core.output import write_json
    from core.store import bench as db

    if args.lengths == "prompts" and not args.prompts:   # no lengths, no prompts: the defaults, the target among them
        from core.bench.sweep.plan import default_lengths
        args.lengths = ",".join(map(str, default_lengths(args.target_prompt)))
    lengths = None if args.lengths == "prompts" else parse_lengths(args.lengths)
    prompts = load_prompts(args.prompts) if args.prompts and lengths is None else None
    if args.prompts and lengths is not None:
        raise UserError("--lengths with a list builds its own prompts: leave out --prompts (or give --lengths alone)")
    if args.concurrency != [1]:
        raise UserError("--lengths runs at concurrency 1 (TTFT is the prefill alone)")
    config = load_models_config(args.config) if args.config else None
    rounds = args.rounds if args.rounds is not None else _env_int("BENCH_ROUNDS", 3)
    settings = Settings(rounds=rounds, warmup=args.warmup, max_tokens=args.max_tokens, temperature=args.temperature,
                        seed=args.seed, concurrency=[1], timeout_s=args.timeout).validate()
    from core.bench.run.bounds import check_sweep_targets
    check_sweep_targets(args.target_prompt, args.target_output, args.context)   # before any endpoint is asked
    endpoint = args.endpoint or os.environ.get("FOUNDRY_LOCAL_ENDPOINT", "").strip() or None
    specs = resolve_specs(_model_names(args, config), endpoint, args.api_key_env, config, args.server_pid)
    cancel = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set()) if in_main else None
    try:
        outcome, sweeps = run_sweep(specs, lengths, settings, prompts=prompts, context=args.context,
                                    target_prompt=args.target_prompt, target_output=args.target_output,
                                    progress=CliProgress(), cancel=cancel)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    results = db.run_summary(outcome.run_id)
    print_results(results)
    for sw in sweeps:
        print(f"{term_text(sw['label'])} [{sw['backend']}]")
        for p in sw["points"]:
            state = "ok" if p["ok"] else term_text(p["error"])
            print(f"  {p.get('length') or '-':>6} target, {p['prompt_tokens'] or '-':>6} prompt tokens "
                  f"({p['prompt_tokens_source'] or '-'}): TTFT {_fmt(p['ttft_ms'])} ms, TPOT {_fmt(p['tpot_ms'], 2)} ms, "
                  f"prefill {_fmt(p['prefill_tokens_per_s'], 0)} tok/s, peak {_fmt(p['peak_rss_mb'], 0)} MB: {state}")
        for line in sweep_lines(sw):
            print("  " + term_text(line))
    if args.json:
        write_json(args.json, {"run_id": outcome.run_id, "results": results, "lengths": sweeps})
    if outcome.status == "interrupted":
        print(f"error: run {outcome.run_id} interrupted ({'cancelled' if cancel.is_set() else outcome.reason})",
              file=sys.stderr)
        return EXIT_CANCELLED if cancel.is_set() else EXIT_INTERRUPTED
    print(f"run {outcome.run_id} completed", file=sys.stderr)
    return 0


def report(args) -> int:
    from core.bench.report import write_report
    from core.store import bench as db
    run_id = args.run_id
    if not run_id:
        runs = db.list_runs()
        if not runs:
            raise UserError("no benchmark run in the database yet")
        run_id = runs[0]["run_id"]
    for kind, path in write_report(run_id, args.out).items():
        print(path)
    return 0
