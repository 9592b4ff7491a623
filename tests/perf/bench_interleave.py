"""Interleaving changes no figure: the same two models measured interleaved and blocked on a quiet
timed server (its own process) give the same TTFT, decode speed and E2E medians, within 1 %.

    .venv/bin/python -m tests.perf.bench_interleave [--rounds 8] [--prompts 3]

The server's delays are known (TTFT 100 / 150 ms, 20 / 30 ms per token), so both orders should read the
same; the ratio interleaved / blocked of each median is printed per model (target: within 0.99-1.01), with
the paired ratios of the two models (expected A over B: TTFT 1.50, decode speed 0.667). Nothing is
stored (the rows are kept in memory), no energy baseline.
"""
from __future__ import annotations

import argparse
import statistics

from core import metrics
from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.conditions.paired import paired_comparisons
from core.bench.run.runner import Runner
from tests.perf._server import server_process

A, B = "a;ttft=0.15;tok=0.03;n=12", "b;ttft=0.1;tok=0.02;n=12"


class Keep:
    """A recorder that keeps the rows in memory."""

    def __init__(self):
        self.rows = {}

    def start_run(self, *a, **k):
        pass

    def save_request(self, row):
        pass

    def save_level(self, run_model, rows):
        for r in rows:
            self.rows[r["request_id"]] = r

    def end_environment(self, *a):
        pass

    def finish_run(self, *a):
        pass


def measure(url: str, order: str, rounds: int, n_prompts: int) -> list[dict]:
    rec = Keep()
    prompts = parse_prompts([f"prompt {i}" for i in range(n_prompts)])
    specs = [ModelSpec(model=m, backend="openai", endpoint=url) for m in (A, B)]
    Runner(specs, prompts, Settings(rounds=rounds, warmup=1, max_tokens=64, order=order), recorder=rec,
           energy_baseline_s=0).run()
    return [r for r in rec.rows.values() if not r["warmup"] and r["ok"]]


def medians(rows: list[dict], model: str) -> dict:
    mine = [r for r in rows if r["model"] == model]
    return {"ttft_ms": statistics.median(r["ttft_ms"] for r in mine),
            "decode_tok_s": statistics.median(metrics.per_s(r["tpot_ms"]) for r in mine),
            "e2e_ms": statistics.median(r["e2e_ms"] for r in mine)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=3)
    a = ap.parse_args()
    with server_process() as url:
        inter = measure(url, "interleaved", a.rounds, a.prompts)
        block = measure(url, "blocked", a.rounds, a.prompts)
    worst = 0.0
    for model in (A, B):
        mi, mb = medians(inter, model), medians(block, model)
        for k in mi:
            ratio = mi[k] / mb[k]
            worst = max(worst, abs(ratio - 1))
            print(f"{model:28} {k:13} interleaved {mi[k]:9.2f}  blocked {mb[k]:9.2f}  ratio {ratio:.4f}")
    for name, rows in (("interleaved", inter), ("blocked", block)):
        (p,) = paired_comparisons(rows)
        print(f"paired ({name}): TTFT a/b {p['ttft_ms']['ratio']:.3f} ({p['ttft_ms']['ci_low']:.3f}-"
              f"{p['ttft_ms']['ci_high']:.3f}); decode a/b {p['decode_tok_s']['ratio']:.3f}; {p['sentence']}")
    print(f"largest change interleaved vs blocked: {worst:.2%} (target: under 1%)")


if __name__ == "__main__":
    main()
