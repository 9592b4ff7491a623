"""The first run is quick: the Benchmark page's defaults (``core.bench.first_run``: the smallest runnable
model, the short shipped set, its rounds, warm-up and token budget) run through the page's code path
(``BenchJob``, polled once a second like the page) on an empty store. Prints the wall time, the budget
(120 s) and their ratio, target <= 1.0 (it should be well under: a ratio near 1 on a quiet machine means
the defaults grew).

    .venv/bin/python -m tests.perf.bench_first_run
"""
from __future__ import annotations

import os
import tempfile
import time

BUDGET_S = 120.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SLM_DB"] = os.path.join(tmp, "first.duckdb")
        from core.bench.first_run import QUICK, quick_prompt_set, smallest_model
        from core.bench.run.inputs import ModelSpec, Settings, load_prompts, shipped_prompt_sets
        from core.bench.run.job import BenchJob
        from core.catalog.models import list_models

        rows = [m for m in list_models(include_catalog=False).models
                if m["backend"] in ("foundry", "openai", "llamacpp") and m.get("cached") is not False]
        model = smallest_model(rows)
        if model is None:
            raise SystemExit("no runnable model with a size: run `python -m core setup-models` first")
        sets = shipped_prompt_sets()
        name = list(sets)[quick_prompt_set(list(sets))]
        prompts = load_prompts(sets[name])
        settings = Settings(rounds=QUICK.rounds, warmup=QUICK.warmup, max_tokens=QUICK.max_tokens,
                            concurrency=[int(QUICK.concurrency)])
        start = time.monotonic()
        job = BenchJob([ModelSpec.from_row(model)], prompts, settings).start()
        while job.running:
            job.snapshot()
            time.sleep(1.0)
        wall = time.monotonic() - start
        if job.error or job.outcome is None or job.outcome.status != "completed":
            raise SystemExit(f"the first run failed: {job.error or job.outcome}")
        n = len(prompts.prompts) * QUICK.rounds
        print(f"first run: {model.get('alias') or model['id']} [{model['backend']}], set {name} "
              f"({n} requests + {QUICK.warmup} warm-up, {QUICK.max_tokens} max tokens)")
        print(f"wall {wall:.1f} s, budget {BUDGET_S:.0f} s, ratio {wall / BUDGET_S:.2f} (target <= 1.0)")


if __name__ == "__main__":
    main()
