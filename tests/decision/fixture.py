"""Small benchmark runs written straight into a real DuckDB file, for the decision tests.

The rows follow core/store/migrations/002_bench.sql (the contract between benchmark, quality and decision).
"""
from __future__ import annotations

import json
import random
import uuid

import numpy as np

from core.store import connect


def add_run(run_id: str, models: list[dict], *, prompt_set_hash: str = "abc123", n_prompts: int = 10,
            seed: int = 0, settings: dict | None = None, environment: dict | None = None,
            created_at: str | None = None) -> None:
    """models: dicts with model, backend, license, disk_mb, peak_rss_mb, e2e (mean ms), ttft, tpot, status,
    error, concurrency (default [1]), failed (number of failed requests), sd (relative noise)."""
    rng = np.random.default_rng(seed)
    ids = random.Random(f"{run_id}:{seed}")   # request ids seeded too: the same rows on every run
    with connect() as con:
        con.execute(
            "INSERT INTO runs (run_id, created_at, status, prompt_set, prompt_set_hash, settings, environment) "
            "VALUES (?, coalesce(CAST(? AS TIMESTAMP), current_timestamp), 'completed', 'meeting-notes', ?, ?, ?)",
            [run_id, created_at, prompt_set_hash, json.dumps(settings or {"rounds": 1}),
             json.dumps(environment or {"cpu_model": "test cpu", "cores": 2})])
        for p in range(n_prompts):
            con.execute("INSERT INTO run_prompts VALUES (?, ?, ?, ?, NULL)", [run_id, f"p{p}", p, f"prompt {p}"])
        for m in models:
            for level in m.get("concurrency", [1]):
                con.execute(
                    "INSERT INTO run_models (run_id, model, backend, concurrency, status, error, license, disk_mb, "
                    "load_s, peak_rss_mb, throughput_tok_s, environment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [run_id, m["model"], m["backend"], level, m.get("status", "ok"), m.get("error"), m.get("license"),
                     m.get("disk_mb"), 1.5, m.get("peak_rss_mb"), 10.0,
                     json.dumps({"execution_provider": "CPU", "level": level})])
                if m.get("status") == "failed":
                    continue
                sd = m.get("sd", 0.05)
                slow = 1.0 if level == 1 else 3.0  # higher levels are slower: must not be used
                for p in range(n_prompts + 1):
                    warm = p == n_prompts
                    e2e = m["e2e"] * slow * (1 + sd * rng.standard_normal())
                    ttft = m["ttft"] * slow * (1 + sd * rng.standard_normal())
                    tpot = m["tpot"] * slow * (1 + sd * rng.standard_normal())
                    con.execute(
                        "INSERT INTO requests (request_id, run_id, model, backend, concurrency, prompt_id, round, "
                        "warmup, ok, ttft_ms, e2e_ms, tpot_ms, completion_tokens) "
                        "VALUES (?, ?, ?, ?, ?, ?, 0, ?, true, ?, ?, ?, 50)",
                        [uuid.UUID(int=ids.getrandbits(128)).hex, run_id, m["model"], m["backend"], level, f"p{p}", warm,
                         ttft if not warm else 99999.0, e2e if not warm else 99999.0, tpot])
                for f in range(m.get("failed", 0)):
                    con.execute(
                        "INSERT INTO requests (request_id, run_id, model, backend, concurrency, prompt_id, round, "
                        "warmup, ok, error) VALUES (?, ?, ?, ?, ?, ?, 1, false, false, 'HTTP 500')",
                        [uuid.UUID(int=ids.getrandbits(128)).hex, run_id, m["model"], m["backend"], level, f"p{f}"])


STANDARD = [
    {"model": "fast-small", "backend": "foundry", "license": "mit", "disk_mb": 300.0, "peak_rss_mb": 900.0,
     "e2e": 800.0, "ttft": 80.0, "tpot": 15.0, "concurrency": [1, 4]},
    {"model": "slow-big", "backend": "foundry", "license": "apache-2.0", "disk_mb": 2000.0, "peak_rss_mb": 3500.0,
     "e2e": 4000.0, "ttft": 400.0, "tpot": 60.0, "failed": 2},
    {"model": "mystery", "backend": "openai", "license": "some-custom-license", "disk_mb": None, "peak_rss_mb": None,
     "e2e": 1500.0, "ttft": 150.0, "tpot": 25.0},
    {"model": "broken", "backend": "llamacpp", "license": "mit", "status": "failed", "error": "model failed to load",
     "e2e": 0, "ttft": 0, "tpot": 0},
]

QUALITY = {
    "fast-small": {"mean": 0.55, "ci_low": 0.50, "ci_high": 0.60, "n": 10, "source": "human"},
    "slow-big": {"mean": 0.85, "ci_low": 0.80, "ci_high": 0.90, "n": 10, "source": "judge"},
}


def fake_quality(run_id, *, prefer="human"):
    """Stands in for core.quality.model_quality (the quality helper's): fixed scores for run-a only."""
    return dict(QUALITY) if run_id == "run-a" else {}
