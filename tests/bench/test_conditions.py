"""The conditions section of the report (order, noisy levels, energy, paired comparisons), escaped."""
import pytest

from core.bench.conditions.lines import energy_lines, noisy_lines, pair_lines
from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.report import build_report, to_markdown
from core.bench.run.runner import run_benchmark
from core.output import md_text
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated

HOSTILE = "evil;n=3;x=[click](http://x.test)<b>"


@pytest.fixture(autouse=True)
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "run.duckdb")))


def test_the_report_says_order_energy_and_pairs_and_escapes_names(tmp_path):
    with OpenAITestServer(models=["good;tok=0.002;n=3", HOSTILE]) as server:
        specs = [ModelSpec(model=m, backend="openai", endpoint=server.base_url) for m in ("good;tok=0.002;n=3", HOSTILE)]
        out = run_benchmark(specs, parse_prompts(["a", "b"]), Settings(rounds=3, warmup=0, max_tokens=4),
                            sys_root=str(tmp_path / "nosys"))
    md = to_markdown(build_report(out.run_id))
    section = md.split("## Conditions: order, noise, energy, paired comparisons", 1)[1].split("\n## ", 1)[0]
    assert "- Order: interleaved (models kept loaded between turns" in section
    assert "- Paired: concurrency 1:" in section
    assert "Energy:" in section and "no energy figure" in section   # no RAPL here, no server process known
    assert "](http" not in section and "<b>" not in section
    results = build_report(out.run_id).results
    noisy = [dict(results[0], noisy=True, noise={"reason": "measured while other programs used 0.9 cores"})]
    assert noisy_lines(noisy, md_text)[0].endswith("measured while other programs used 0.9 cores")
    est = [dict(results[0], energy={"joules": 2.0, "j_per_request": 1.0, "j_per_token": 0.25,
                                    "source": "estimate: model process CPU", "reason": "no RAPL counter"})]
    assert "1 J per request, 0.25 J per output token — estimate" in energy_lines(est, md_text)[0]
    assert pair_lines([], md_text) == []
