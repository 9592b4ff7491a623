"""The app does not slow the model: decode speed of a benchmark run through the page's code path
(``core.bench.run.job.BenchJob``, a background thread polled like the page polls it) / the same benchmark
through the CLI (``python -m core bench``), target >= 0.97. Also prints the observer CPU of each.

    .venv/bin/python -m tests.perf.bench_ui_vs_cli [--model smollm2-135m-instruct-int4] [--rounds 2]
        [--max-tokens 96] [--pairs 3]

Both store their run in a temporary database; decode speed = the level's median per-request decode
speed (decode_tokens_per_s p50, 1/TPOT). The two alternate (UI CLI UI CLI ...) so drift hits both.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.perf._server import REPO

PROMPTS = [f"Write a short paragraph about topic number {i}: what it is and why it matters." for i in range(4)]


def run_ui(model: str, rounds: int, max_tokens: int, prompts_file: Path) -> dict:
    from core.bench.run.inputs import ModelSpec, Settings, load_prompts
    from core.bench.run.job import BenchJob
    from core.catalog.models import list_models, resolve_model
    from core.store import bench as db
    spec = ModelSpec.from_row(resolve_model(model, list_models(include_catalog=False).models))
    job = BenchJob([spec], load_prompts(prompts_file),
                   Settings(rounds=rounds, warmup=1, max_tokens=max_tokens, concurrency=[1])).start()
    while job.running:          # the page's fragment polls the snapshot once a second
        job.snapshot()
        time.sleep(1.0)
    if job.error or job.outcome is None or job.outcome.status != "completed":
        raise SystemExit(f"UI-path run failed: {job.error or job.outcome}")
    (result,) = db.run_summary(job.run_id)
    return result


def run_cli(model: str, rounds: int, max_tokens: int, prompts_file: Path, tmp: Path) -> dict:
    out = tmp / "cli.json"
    res = subprocess.run([sys.executable, "-m", "core", "bench", "--prompts", str(prompts_file), "--model", model,
                          "--rounds", str(rounds), "--warmup", "1", "--max-tokens", str(max_tokens),
                          "--json", str(out)], cwd=REPO, env=dict(os.environ), capture_output=True, text=True,
                         timeout=900)
    if res.returncode:
        raise SystemExit(f"CLI run failed: {res.stderr.strip()[-300:]}")
    (result,) = json.loads(out.read_text())["results"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct-int4")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--pairs", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["SLM_DB"] = str(tmp / "ui_vs_cli.duckdb")
        prompts_file = tmp / "prompts.json"
        prompts_file.write_text(json.dumps(PROMPTS))
        ui, cli, ui_obs, cli_obs = [], [], [], []
        for i in range(a.pairs):
            if i % 2 == 0:   # which side goes first alternates too
                u = run_ui(a.model, a.rounds, a.max_tokens, prompts_file)
                c = run_cli(a.model, a.rounds, a.max_tokens, prompts_file, tmp)
            else:
                c = run_cli(a.model, a.rounds, a.max_tokens, prompts_file, tmp)
                u = run_ui(a.model, a.rounds, a.max_tokens, prompts_file)
            ui.append(u["decode_tokens_per_s"]["p50"])
            cli.append(c["decode_tokens_per_s"]["p50"])
            ui_obs.append((u["observer_cpu_s"] or 0) / (u["window_s"] or 1) * 100)
            cli_obs.append((c["observer_cpu_s"] or 0) / (c["window_s"] or 1) * 100)
            print(f"pair: UI path {ui[-1]:.1f} tok/s (observer {ui_obs[-1]:.1f}% of a core), "
                  f"CLI {cli[-1]:.1f} tok/s (observer {cli_obs[-1]:.1f}%), ratio {ui[-1] / cli[-1]:.3f}", flush=True)
    ratios = [u / c for u, c in zip(ui, cli)]
    ratio = statistics.median(ratios)
    print(f"model {a.model}, {a.rounds} rounds x {len(PROMPTS)} prompts x {a.max_tokens} max tokens, "
          f"{a.pairs} alternating pairs")
    print(f"decode speed p50: UI path {statistics.median(ui):.1f} tok/s, CLI {statistics.median(cli):.1f} tok/s")
    print(f"observer CPU (app's own process, % of a core over the window): UI path {statistics.median(ui_obs):.1f}, "
          f"CLI {statistics.median(cli_obs):.1f}")
    print(f"ratio UI/CLI (median of pairs): {ratio:.3f} (spread {min(ratios):.3f}..{max(ratios):.3f}; "
          f"target >= 0.97): {'OK' if ratio >= 0.97 else 'MISSED'}")


if __name__ == "__main__":
    main()
