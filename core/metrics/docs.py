"""docs/metrics.md, written from the table of metrics: `python -m core.metrics.docs > docs/metrics.md`
(tests/test_metrics_table.py fails when the file and the table disagree)."""
from __future__ import annotations

from core.metrics.table import DEFINITIONS, IDENTITY, METRICS, RESULT_KEYS
from core.stats import TAIL_MIN_SAMPLES

SCOPES = (
    ("level", "Per level (model x engine x concurrency)",
     "One result per level, compiled from its request rows and its stored figures. A distribution has mean, "
     "p50, p90, p95 and p99 (in the JSON as a record, in the CSV as `name_p50`, ...); the level table and the "
     "report show the statistics named here."),
    ("request", "Per request", "Derived once from each request's record and stored with it."),
    ("sweep", "The length sweep", "From a length sweep's requests and the model's metadata."),
)

PREAMBLE = f"""# What each number means

This file is written from `core/metrics/table.py` (`python -m core.metrics.docs > docs/metrics.md`); a test
fails when they disagree. Every number keeps one name everywhere: the level table, `--json`, CSV, charts,
the report and the decision's criteria and constraints. `None` (shown as "unknown") means unknown, never 0.

Rules that hold for every number:
- The clock is `time.perf_counter()`; a request's start is stamped just before it leaves the client, on a
  connection already open (opening one is `connect_ms`, outside TTFT).
- {DEFINITIONS["requests"]}
- Below {TAIL_MIN_SAMPLES} successful requests, p90/p95/p99 are indicative only (`small_sample`); an interval
  needs 2 samples or more, never a zero-width one.
- Completion tokens come from the runtime's usage, else the model's own tokenizer, else SSE chunks, and the
  source is kept (`token_count_source`). Decode speed (1/TPOT, per request) and aggregate throughput (per
  level) are two numbers with two names.
- Memory and CPU are those of the process that runs the model, never the app's; unknown when that process
  is not known.
"""


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|")


def metrics_markdown() -> str:
    out = [PREAMBLE]
    for scope, title, intro in SCOPES:
        rows = [m for m in METRICS if m.scope == scope]
        out.append(f"\n## {title}\n\n{intro}\n")
        out.append("| name | unit | label | shown | definition |\n|---|---|---|---|---|")
        for m in rows:
            shown = ", ".join(m.stats) if m.stats else ("yes" if m.shown and scope == "level" else "")
            out.append(f"| `{m.name}` | {_cell(m.unit)} | {_cell(m.label)} | {shown} | {_cell(m.definition)} |")
    out.append("\n## The JSON result of a level\n\nKeys in this order: "
               + ", ".join(f"`{k}`" for k in RESULT_KEYS) + f". The first {len(IDENTITY)} say which level it is "
               "and how it ended (`status`: ok, interrupted or failed).\n")
    return "\n".join(out)


if __name__ == "__main__":
    print(metrics_markdown(), end="")
