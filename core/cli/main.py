"""`python -m core <command>`: the headless face of the app.

Each feature module exposes `register(subparsers)`, adding its commands with a `func(args) -> int`.
A `UserError` (bad input, unreachable endpoint, ...) becomes one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from core.errors import UserError

# Feature modules that add commands (each has register(subparsers)).
COMMAND_MODULES = [
    "core.cli.models",
    "core.cli.bench",
    "core.cli.runs",
    "core.cli.quality",
    "core.cli.decide",
    "core.cli.store",
    "core.cli.campaign",
]


# Commands that never read benchmark runs; before any other command that uses the store, the router settles runs
# whose process is gone ('interrupted', their journals imported): the reads themselves never write.
NO_RUN_READS = frozenset({"models", "endpoint", "register", "store"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="SLM Selector, headless.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "db", None):  # every command's --db: the store (DuckDB file or DuckLake URL) for this process
        db = str(args.db)
        os.environ["SLM_DB"] = db if db.startswith("ducklake:") else os.path.abspath(os.path.expanduser(db))
    from core.output import TerminalStream, redact

    # Everything the commands print passes through term_text: model ids, endpoint errors and outputs
    # come from outside and may hold ANSI escapes or control characters.
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalStream(sys.stdout), TerminalStream(sys.stderr)
    try:
        if hasattr(args, "db") and args.command not in NO_RUN_READS:
            from core.store.bench import mark_stale_runs
            mark_stale_runs()
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {redact(exc.one_line())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout, sys.stderr = saved
