"""The fleet decision over a DuckLake store: 10 devices x 20 models x 1,000,000 stored requests.

Run: .venv/bin/python tests/perf/bench_fleet_decision.py [--keep DIR]
Builds the store (SQLite catalog + Parquet files in a temp folder; every request row from ONE
INSERT ... SELECT over range(), no Python loop over rows), then prints, as ratios to the targets:
- time to the first matrix (in a new process, and with the extensions already loaded): a fresh attach of the store, reading the 10 runs' model rows and the 1M requests,
  per-device metrics, aggregation, constraints on every device, the bootstrap, and the first evaluation
  (target < 2 s);
- a weight change: the evaluation only (matrix, 10,000 weight samples, flips, ties, per-device breakdown)
  (target < 200 ms, median of 15).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

N_DEVICES, N_MODELS, N_REQUESTS = 10, 20, 1_000_000
FIRST_TARGET_S, WEIGHT_TARGET_MS = 2.0, 200.0


def build(url: str) -> None:
    from core.store import db
    per = N_REQUESTS // (N_DEVICES * N_MODELS)
    with db.connect(url) as con:
        con.execute(
            "INSERT INTO runs (run_id, created_at, finished_at, status, prompt_set, prompt_set_hash, settings, "
            "environment, device) SELECT 'run-' || d, current_timestamp, current_timestamp, 'completed', 'perf', 'h', "
            "'{}', json_object('device', 'device-' || d, 'ram_gb', 8 + 8 * d), 'device-' || d FROM range(?) t(d)",
            [N_DEVICES])
        con.execute(
            "INSERT INTO run_models (run_id, model, backend, concurrency, status, license, disk_mb, peak_rss_mb, "
            "label, position) SELECT 'run-' || d, 'model-' || m, 'openai', 1, 'ok', "
            "CASE m % 3 WHEN 0 THEN 'mit' WHEN 1 THEN 'apache-2.0' ELSE 'gemma' END, 300 + 100 * m, "
            "600 + 150 * m + 40 * d, 'model-' || m, m FROM range(?) a(d), range(?) b(m)", [N_DEVICES, N_MODELS])
    t0 = time.perf_counter()
    with db.connect(url) as con:      # the one INSERT ... SELECT that makes every request row
        con.execute(
            "INSERT INTO requests (request_id, run_id, model, backend, concurrency, prompt_id, round, warmup, ok, "
            "ttft_ms, e2e_ms, tpot_ms, completion_tokens, created_at) "
            "SELECT 'q' || i, 'run-' || (i // ? % ?), 'model-' || (i // ?), 'openai', 1, 'p' || (i % 50), "
            "       i % ? // 50, false, (i % 97) <> 0, "
            "       20 + 3 * (i // ?) + 5 * (i // ? % ?) + (hash(i) % 1000) / 100.0, "
            "       200 + 30 * (i // ?) + 40 * (i // ? % ?) + (hash(i * 7) % 10000) / 50.0, "
            "       5 + (i // ?) * 0.5 + (i // ? % ?) * 0.8 + (hash(i * 13) % 100) / 100.0, 64, current_timestamp "
            "FROM range(?) t(i)",
            [per, N_DEVICES, per * N_DEVICES, per,
             per * N_DEVICES, per, N_DEVICES,
             per * N_DEVICES, per, N_DEVICES,
             per * N_DEVICES, per, N_DEVICES, N_REQUESTS])
    print(f"built {N_REQUESTS:,} request rows with one INSERT ... SELECT in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", metavar="DIR", help="build the store in DIR and keep it")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="slm-fleet-perf-"))
    base.mkdir(parents=True, exist_ok=True)
    os.environ["SLM_DATA_PATH"] = str(base / "files")
    url = f"ducklake:sqlite:{base / 'team.sqlite'}"
    os.environ["SLM_DB"] = url
    from core.decision import fleet
    from core.store import db
    try:
        if not (base / "team.sqlite").exists():
            build(url)
        devices = [f"device-{d}" for d in range(N_DEVICES)]
        cons = ["peak_rss_mb<=3500", "e2e_p95_ms<=1200"]

        def first_matrix():
            db.close_lakes()       # a fresh attach of the store, as a new session would do
            t0 = time.perf_counter()
            fp = fleet.prepare_fleet(devices, constraints=cons)
            return fp, fleet.evaluate_fleet(fp, "balanced"), time.perf_counter() - t0

        if args.keep and (base / "team.sqlite").exists():
            db.close_lakes()
        _, _, cold = first_matrix()        # this process's first: loads the DuckLake extensions too
        firsts = [first_matrix() for _ in range(3)]
        fp, result = firsts[-1][0], firsts[-1][1]
        first = statistics.median(t for _, _, t in firsts)
        n = sum(d["requests_ok"] + d["requests_failed"] for r in result.candidates for d in r.devices.values() if d)
        assert n == N_REQUESTS, n
        weights = ["latency=0.5,quality=0.2,memory=0.3", "balanced", "memory=0.7,disk=0.3", "latency first"]
        times = []
        for k in range(16):
            t = time.perf_counter()
            fleet.evaluate_fleet(fp, weights[k % len(weights)])
            times.append((time.perf_counter() - t) * 1000)
        change = statistics.median(times[1:])
        passing = sum(r.passes for r in result.candidates)
        print(f"{N_DEVICES} devices x {N_MODELS} models x {N_REQUESTS:,} requests (DuckLake, SQLite catalog): "
              f"{passing} of {len(result.candidates)} candidates pass on every device, winner {result.winner}")
        print(f"first matrix, new process (+ loading the DuckLake extensions): {cold:6.2f} s   "
              f"ratio to {FIRST_TARGET_S:.0f} s target: {cold / FIRST_TARGET_S:.3f}")
        print(f"first matrix (attach, read 1M rows, aggregate, bootstrap, evaluate; median of 3): {first:6.2f} s   "
              f"ratio to {FIRST_TARGET_S:.0f} s target: {first / FIRST_TARGET_S:.3f}")
        print(f"weight change (median of 15):                              {change:6.1f} ms  "
              f"ratio to {WEIGHT_TARGET_MS:.0f} ms target: {change / WEIGHT_TARGET_MS:.3f}")
    finally:
        db.close_lakes()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
