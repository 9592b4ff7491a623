"""Reports over one run: Markdown (benchmark_report.md) and CSVs, from the CLI too."""
import csv
import io

import pytest

from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.run.runner import run_benchmark
from core.cli import main
from core.bench.report import build_report, requests_csv, to_csv, to_markdown
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated

MODEL = "rep;ttft=0.002;tok=0.001;n=4"


@pytest.fixture()
def run_id(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "r.duckdb")))
    with OpenAITestServer(models=[MODEL, "bad;fault=500"]) as s:
        out = run_benchmark([ModelSpec(model=MODEL, backend="openai", endpoint=s.base_url),
                             ModelSpec(model="bad;fault=500", backend="openai", endpoint=s.base_url)],
                            parse_prompts(["| not a table", "# not a heading"]), Settings(rounds=2, concurrency=[1, 2]))
    return out.run_id


def test_markdown_and_csv(run_id):
    report = build_report(run_id)
    md = to_markdown(report)
    assert md.startswith(f"# Benchmark report — run {run_id}")
    table = [ln for ln in md.splitlines() if ln.startswith(f"| {MODEL}")]
    assert len(table) == 2
    assert "## Failures" in md and "HTTP 500" in md
    assert "w0 w1" not in md                      # model outputs never go into the Markdown
    assert "indicative only" in md                # 4 requests per level: tails are indicative
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [(r["model"], r["concurrency"]) for r in rows] == [(MODEL, "1"), (MODEL, "2"), ("bad;fault=500", "1"),
                                                            ("bad;fault=500", "2")]
    assert float(rows[0]["ttft_ms_p50"]) > 0 and rows[2]["status"] == "failed"
    reqs = list(csv.DictReader(io.StringIO(requests_csv(report))))
    assert len(reqs) == 2 * 2 * (4 + 1) and {r["output_text"] for r in reqs if r["ok"] == "True"} == {"w0 w1 w2 w3 "}


def test_bench_report_command(run_id, tmp_path, capsys):
    assert main(["bench-report", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "benchmark_report.md").read_text().count(run_id) >= 1
    assert (tmp_path / "out" / "benchmark_summary.csv").exists()
    assert main(["bench-report", "nope", "--out", str(tmp_path)]) == 2
    assert "no benchmark run 'nope'" in capsys.readouterr().err
