"""CLI: `runs`: the stored benchmark runs, newest first, with status, device, models and request counts.

A run whose process is gone reads "interrupted" (the CLI router marks it so before the command, as the app does
before each page).
"""
from __future__ import annotations

from core.output import write_json

# (column heading, key in the JSON row)
TABLE = (("run", "run_id"), ("status", "status"), ("created", "created_at"), ("device", "device"),
         ("ok", "requests_ok"), ("failed", "requests_failed"), ("models", "models"))


def rows() -> list[dict]:
    """One dict per run: the `--json` shape (request counts exclude warm-ups, as everywhere)."""
    from core.store import bench as db
    out = []
    for r in db.list_runs():
        total, failed = int(r["requests"] or 0), int(r["failed"] or 0)
        out.append({"run_id": r["run_id"], "status": r["status"], "created_at": r["created_at"],
                    "finished_at": r["finished_at"], "device": r["device"], "prompt_set": r["prompt_set"],
                    "models": r["models"], "requests_ok": total - failed, "requests_failed": failed})
    return out


def _cell(value) -> str:
    from core.output import term_text
    if value is None:
        return "-"
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return term_text(value)


def format_table(runs: list[dict]) -> str:
    """A plain text table; every cell passes through the terminal escaper (ids and labels are untrusted)."""
    heads = [h for h, _ in TABLE]
    cells = [[_cell(r[k]) for _, k in TABLE] for r in runs]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def cmd_runs(args) -> int:
    runs = rows()
    if args.json:
        write_json(args.json, runs)
        print(f"wrote {len(runs)} runs to {args.json}")
    else:
        print(format_table(runs) if runs else "no benchmark run in the store yet")
    return 0


def register(sub) -> None:
    p = sub.add_parser("runs", help="the stored benchmark runs: status, device, models, requests ok/failed",
                       description="Every benchmark run in the store, newest first. A run whose process is gone "
                                   "reads 'interrupted' (resume it with `bench --resume RUN_ID`). Request counts "
                                   "exclude warm-ups.")
    p.add_argument("--json", metavar="FILE", help="write the runs as a JSON list (run_id, status, created_at, "
                                                  "finished_at, device, prompt_set, models, requests_ok, "
                                                  "requests_failed)")
    p.add_argument("--db", metavar="STORE", help="DuckDB file or DuckLake URL (default $SLM_DB)")
    p.set_defaults(func=cmd_runs)
