"""`python -m core decide` on a fixture DuckDB file: the exact --json contract, reports, errors."""
import json
import os
import re
import subprocess
import sys

import pytest

from tests.decision import fixture as fx
from core.cli import main
from tests.support.cli import run_cli
from tests.support.store import copy_template, migrated
from core.config import REPO_ROOT

CANDIDATE_KEYS = {"candidate", "model", "backend", "run_id", "criteria", "normalized", "score", "rank", "tie_with",
                  "win_probability", "passes", "failed_constraints"}
CRITERIA_KEYS = {"latency_ms", "decode_tokens_per_s", "peak_rss_mb", "quality", "disk_mb", "license", "time_to_notes_ms",
                 "energy_j"}


RUBRIC = {"name": "notes", "description": "decide tests",
          "criteria": [{"name": "good", "description": "is it good", "scale": [1, 5], "weight": 1}]}
# On the 1..5 scale (score - 1) / 4: fast-small's ten outputs scored by a person average 3.2 -> 0.55; slow-big's,
# scored by the judge alone, average 4.4 -> 0.85; mystery is scored by nobody.
HUMAN = {"fast-small": [3, 3, 3, 3, 3, 3, 3, 3, 4, 4]}
JUDGE_ONLY = {"slow-big": [5, 5, 5, 5, 4, 4, 4, 4, 4, 4]}
AGREEING = HUMAN["fast-small"]                       # the judge on the outputs people scored: kappa 1
DISAGREEING = [4, 4, 3, 3, 3, 3, 3, 3, 3, 3]         # the people's 4s get 3 and two 3s get 4: kappa < 0


def outputs(run_id: str) -> dict[str, list[str]]:
    """{model: [request_id, ...]} of the outputs quality scores (one per prompt, by prompt order)."""
    from core.quality.outputs import run_outputs
    by: dict[str, list[str]] = {}
    for o in run_outputs(run_id):
        by.setdefault(o["model"], []).append(o["request_id"])
    return by


def judge(run_id: str, scores: dict[str, list[float]]) -> str:
    """A finished pointwise judge run written through the store's own functions (what run_judge writes)."""
    from core.store import quality as qstore
    ids = outputs(run_id)
    jid = qstore.create_judge_run(run_id=run_id, rubric="notes", judge_model="big-judge", judge_backend="openai",
                                  judge_endpoint=None, mode="pointwise", template_version="test-v1", settings={},
                                  warnings=[])
    for model, values in scores.items():
        for rid, v in zip(ids[model], values):
            qstore.save_judgement(judge_run_id=jid, run_id=run_id, request_id=rid, rubric="notes",
                                  template_version="test-v1", status="ok", scores={"good": v}, rationale="r",
                                  raw="{}", raw_attempts=["{}"], attempts=1, error=None, messages=[])
    qstore.finish_judge_run(jid, "completed")
    return jid


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """run-a with real stored scores: a person scored fast-small, the judge scored fast-small (agreeing with the
    person) and slow-big; run-b nobody scored. Quality and the trust gate are computed from them for real.
    Built once per module; each test gets its own copy (`db`)."""
    path = migrated(tmp_path_factory.mktemp("decide") / "bench.duckdb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLM_DB", str(path))
        _build()
    return path


@pytest.fixture()
def db(built, tmp_path, monkeypatch):
    path = copy_template(built, tmp_path / "bench.duckdb")
    monkeypatch.setenv("SLM_DB", str(path))
    return path


def _build() -> None:
    from core.quality.rubrics import import_rubric
    from core.store import quality as qstore
    fx.add_run("run-a", fx.STANDARD, seed=1)
    fx.add_run("run-b", [{"model": "fast-small", "backend": "llamacpp", "license": "MIT", "disk_mb": 280.0,
                          "peak_rss_mb": 700.0, "e2e": 1200.0, "ttft": 60.0, "tpot": 22.0}],
               seed=2)
    import_rubric(dict(RUBRIC))
    ids = outputs("run-a")
    qstore.save_human_scores([{"run_id": "run-a", "request_id": rid, "rubric": "notes", "rater": "ana",
                               "scores": {"good": v}, "comment": None}
                              for rid, v in zip(ids["fast-small"], HUMAN["fast-small"])])
    judge("run-a", {"fast-small": AGREEING, **JUDGE_ONLY})


def test_json_contract_and_ranking(db, tmp_path, capsys):
    out = tmp_path / "d.json"
    rc = main(["decide", "--runs", "run-a,run-b", "--weights", "latency=0.3,decode_speed=0.1,memory=0.1,quality=0.4,"
               "disk=0.05,license=0.05", "--constraint", "peak_rss_mb<=2000", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert {"winner", "candidates", "flip_points"} <= set(doc)
    assert set(doc["flip_points"]) == {"latency", "decode_speed", "memory", "quality", "disk", "license",
                                       "time_to_notes", "energy"}
    assert len(doc["candidates"]) == 5  # 4 in run-a (the failed one included) + 1 in run-b
    for c in doc["candidates"]:
        assert CANDIDATE_KEYS <= set(c)
        assert set(c["criteria"]) == CRITERIA_KEYS and set(c["normalized"]) == CRITERIA_KEYS
        assert all(0.0 <= v <= 1.0 for v in c["normalized"].values())
        assert isinstance(c["passes"], bool) and isinstance(c["tie_with"], list)
    rows = {c["candidate"]: c for c in doc["candidates"]}
    fast = rows["fast-small | foundry | run-a"]
    # concurrency 1 rows only (the level-4 rows are 3x slower) and warm-ups excluded (they took 99999 ms)
    assert 700 < fast["criteria"]["latency_ms"] < 1000
    assert 55 < fast["criteria"]["decode_tokens_per_s"] < 80  # 1000 / 15 ms per token
    assert fast["criteria"]["quality"] == pytest.approx(0.55)
    assert rows["fast-small | llamacpp | run-b"]["criteria"]["license"] == "mit"
    assert rows["fast-small | llamacpp | run-b"]["criteria"]["quality"] is None  # not scored: unknown
    big = rows["slow-big | foundry | run-a"]
    assert not big["passes"] and big["failed_constraints"] == ["peak_rss_mb 3500 violates peak_rss_mb<=2000"]
    assert big["rank"] is None and big["win_probability"] == 0.0
    mystery = rows["mystery | openai | run-a"]
    assert mystery["criteria"]["license"] == "unknown" and mystery["failed_constraints"] == ["peak_rss_mb unknown"]
    assert not rows["broken | llamacpp | run-a"]["passes"]
    assert rows["broken | llamacpp | run-a"]["failed_constraints"][0] == "benchmark failed: model failed to load"
    assert doc["winner"] in {c for c, r in rows.items() if r["passes"]}
    assert doc["winner"] == next(c["candidate"] for c in doc["candidates"] if c["rank"] == 1)
    printed = capsys.readouterr().out
    assert f"winner: {doc['winner']}" in printed and "FAILS: peak_rss_mb 3500" in printed


def test_runs_that_differ_are_refused_unless_mixing_is_allowed(db, tmp_path):
    fx.add_run("run-short", [dict(fx.STANDARD[0], model="other")], settings={"rounds": 1, "max_tokens": 32})
    fx.add_run("run-long", [dict(fx.STANDARD[0], model="third")], settings={"rounds": 1, "max_tokens": 96},
               prompt_set_hash="def456")
    p = _cli("--runs", "run-short,run-long", env_db=db)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    line = p.stderr.strip()
    assert line.count("\n") == 0 and "runs differ in" in line and "max tokens (32 vs 96)" in line, line
    assert "prompt set" in line and "--allow-mixed" in line
    out = tmp_path / "mixed.json"
    p = _cli("--runs", "run-short,run-long", "--allow-mixed", "--json", str(out), env_db=db)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert any("max tokens (32 vs 96)" in w for w in doc["warnings"])
    assert "warning: runs differ in" in p.stdout
    # the warning travels in the saved record and its exports
    rep = tmp_path / "mixed.md"
    assert _cli("--runs", "run-short,run-long", "--allow-mixed", "--save", "mixed", "--report", str(rep),
                env_db=db).returncode == 0
    assert "Warning: runs differ in" in rep.read_text() and "max tokens \\(32 vs 96\\)" in rep.read_text()
    from core.decision import record
    assert any("max tokens (32 vs 96)" in w for w in record.load("mixed")["warnings"])


def test_one_candidate_per_model_and_engine_newest_run_used(db, tmp_path):
    fx.add_run("run-old", [dict(fx.STANDARD[0], e2e=5000.0)], created_at="2026-01-01 10:00:00", seed=3)
    fx.add_run("run-new", [dict(fx.STANDARD[0], e2e=500.0)], created_at="2026-01-02 10:00:00", seed=4)
    out = tmp_path / "d.json"
    assert main(["decide", "--runs", "run-old,run-new", "--weights", "latency=1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [c["run_id"] for c in doc["candidates"]] == ["run-new"]  # one candidate, from the newest run
    assert doc["candidates"][0]["criteria"]["latency_ms"] < 1000
    assert any("the newest (run-new) is used" in w for w in doc["warnings"])
    assert any("newest of runs run-old, run-new" in f for f in doc["candidates"][0]["flags"])


def test_missing_quality_is_no_data_not_zero(db, tmp_path):
    out = tmp_path / "d.json"
    # run-a: fast-small and slow-big are scored, mystery is not; with quality weighted it cannot be ranked
    assert main(["decide", "--runs", "run-a", "--weights", "latency=0.5,quality=0.5", "--json", str(out)]) == 0
    rows = {c["model"]: c for c in json.loads(out.read_text())["candidates"]}
    assert rows["mystery"]["rank"] is None and not rows["mystery"]["passes"]
    assert "not comparable on quality: no quality data" in rows["mystery"]["failed_constraints"][0]
    # without a quality weight it ranks on what it has
    assert main(["decide", "--runs", "run-a", "--weights", "latency=1", "--json", str(out)]) == 0
    rows = {c["model"]: c for c in json.loads(out.read_text())["candidates"]}
    assert rows["mystery"]["rank"] is not None
    # a run nobody scored: quality's weight is left out, with a warning, instead of counting 0 for all
    assert main(["decide", "--runs", "run-b", "--weights", "latency=0.5,quality=0.5", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["winner"] and any("no candidate has quality data" in w for w in doc["warnings"])


def test_require_commercial_and_latency_metric(db, tmp_path):
    out = tmp_path / "d.json"
    assert main(["decide", "--runs", "run-a", "--weights", "latency=1", "--latency-metric", "ttft_p95",
                 "--require-commercial", "--json", str(out)]) == 0
    rows = {c["model"]: c for c in json.loads(out.read_text())["candidates"]}
    assert rows["mystery"]["failed_constraints"] == ["license unknown: commercial use not established"]
    assert 60 < rows["fast-small"]["criteria"]["latency_ms"] < 100  # TTFT p95, not E2E


def test_html_report_is_self_contained(db, tmp_path):
    report = tmp_path / "report.html"
    assert main(["decide", "--runs", "run-a", "--weights", "quality=0.5,latency=0.5", "--report", str(report),
                 "--save", "meeting-1", "--notes", "Chosen <b>for</b> the pilot"]) == 0
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # nothing is fetched: no script, image, stylesheet or frame source, no import, in the page's own markup
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", text, re.S | re.I)
    markup = re.sub(r"(<script[^>]*>).*?(</script>)", r"\1\2", text, flags=re.S | re.I)
    # the chart data (JSON, every '<' escaped) and vega + vega-lite + vega-embed, inlined
    assert len(scripts) == 2 and len(scripts[1]) > 500_000
    assert not re.search(r"<(script|img|iframe|source|embed|video|audio)[^>]*\ssrc\s*=", markup, re.I)
    assert not re.search(r"<link\b", markup, re.I)
    assert not re.search(r"https?://", markup)
    assert not re.search(r"url\(", markup)
    # and the inlined JavaScript imports nothing (a module that would load code from elsewhere)
    assert not re.search(r"\bimport\s*\(|\bimport\s+[\w{*][^;]*?\bfrom\b|^\s*import\s*[\"']", scripts[1], re.M)
    # the charts are inside: the specs (read from the JSON element) and the vega-embed call, libraries inlined
    assert text.count('id="chart-') == 3 and "decision-specs" in scripts[1] and "vegaEmbed" not in scripts[0]
    assert '<script type="application/json" id="decision-specs">' in text
    for title in ("Quality against latency", "Weighted score by criterion", "How often each candidate wins"):
        assert title in scripts[0]
    assert "Chosen &lt;b&gt;for&lt;/b&gt; the pilot" in text  # notes escaped
    assert "meeting-1" in text and "abc123" in text  # record name and prompt-set hash


def test_markdown_csv_json_reports(db, tmp_path):
    md, csvf, js = tmp_path / "r.md", tmp_path / "r.csv", tmp_path / "r.json"
    for f in (md, csvf, js):
        assert main(["decide", "--runs", "run-a", "--weights", "latency=1", "--report", str(f)]) == 0
    text = md.read_text()
    assert text.startswith("# Decision:") and "| rank | candidate | status |" in text and "## Flip points" in text
    assert "not ranked: benchmark failed: model failed to load" in text
    assert "some-custom-license" in text and "not in data/licenses.json" in text
    lines = csvf.read_text().splitlines()
    assert lines[0].startswith("name,candidate,model,backend,run_id,rank,score") and len(lines) == 5
    doc = json.loads(js.read_text())
    assert doc["result"]["winner"] and doc["context"]["runs"]["run-a"]["prompt_set_hash"] == "abc123"


def _cli(*args, env_db):
    env = dict(os.environ, SLM_DB=str(env_db))
    return subprocess.run([sys.executable, "-m", "core", "decide", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_process_exit_codes(db, tmp_path, capsys):
    # one real process: `python -m core` exits with main's code and prints one line, no traceback
    p = _cli("--runs", "nope", env_db=db)
    assert p.returncode == 2 and p.stderr.strip() == "error: unknown run id nope", p.stderr
    # the rest in this process: the same main()
    out = tmp_path / "p.json"
    code, _, err = run_cli(capsys, "decide", "--runs", "run-a", "--weights", "latency=1", "--json", str(out))
    assert code == 0, err
    assert json.loads(out.read_text())["winner"]
    for args, msg in [
        (["--runs", "run-a", "--weights", "speed=1"], "error: unknown weight 'speed'"),
        (["--runs", "run-a", "--constraint", "peak_rss_mb<<3"], "error: bad constraint"),
        (["--runs", "run-a", "--report", str(tmp_path / "x.pdf")], "error: cannot write a report"),
    ]:
        code, _, err = run_cli(capsys, "decide", *args)
        assert code == 2 and err.strip().startswith(msg) and err.count("\n") == 1, (args, err)
        assert "Traceback" not in err
    code, _, err = run_cli(capsys, "decide", "--runs", "run-a", "--db", str(tmp_path / "other.duckdb"))
    assert code == 2 and "unknown run id run-a" in err  # --db picks another file


def test_saved_name_is_not_overwritten(db, tmp_path):
    assert main(["decide", "--runs", "run-a", "--save", "q3"]) == 0
    assert main(["decide", "--runs", "run-a", "--save", "q3"]) == 2


def test_judge_only_quality_is_verified_above_the_gate_and_unverified_below(db, tmp_path):
    """The real quality path: kappa of the judge with the person on fast-small's 10 outputs decides whether
    slow-big's judge-only quality counts as verified."""
    out = tmp_path / "g.json"

    def slow_big(*gate):
        assert main(["decide", "--runs", "run-a", "--weights", "quality=1", *gate, "--json", str(out)]) == 0
        rows = {c["model"]: c for c in json.loads(out.read_text())["candidates"]}
        assert rows["fast-small"]["quality_detail"]["source"] == "human"
        assert rows["fast-small"]["quality_detail"]["verified"] is True      # people's scores need no gate
        assert rows["fast-small"]["criteria"]["quality"] == pytest.approx(0.55)
        return rows["slow-big"]

    # the agreeing judge (kappa 1) on 10 co-scored outputs passes a gate of 10 outputs
    big = slow_big("--judge-min-kappa", "0.6", "--judge-min-outputs", "10")
    assert big["quality_detail"]["source"] == "judge" and big["quality_detail"]["verified"] is True
    assert big["criteria"]["quality"] == pytest.approx(0.85)
    assert not any("unverified" in f for f in big["flags"])
    # ... but not the default gate of 20 co-scored outputs
    big = slow_big()
    assert big["quality_detail"]["verified"] is False
    assert any("quality unverified: judge not calibrated: only 10 co-scored outputs, kappa 1.00" in f
               for f in big["flags"]), big["flags"]
    # a newer judge run that disagrees with the person: kappa below 0, below the gate whatever the outputs; the
    # verified rater still decides quality (people, else a verified rater, else an unverified one)
    judge("run-a", {"fast-small": DISAGREEING, **JUDGE_ONLY})
    big = slow_big("--judge-min-kappa", "0.6", "--judge-min-outputs", "10")
    assert big["quality_detail"]["verified"] is True and big["criteria"]["quality"] == pytest.approx(0.85)
    from core.quality.calibration import Gate
    from core.quality.scores import quality_report
    verified, disagreeing = quality_report("run-a", gate=Gate(0.6, 10))["raters"]
    assert verified["trusted"] and verified["kappa"] == pytest.approx(1.0)
    assert not disagreeing["trusted"] and disagreeing["kappa"] < 0
    kappa = float(re.search(r"kappa (-?[\d.]+) with people on 10 co-scored outputs", disagreeing["reason"]).group(1))
    assert kappa < 0, disagreeing["reason"]
    # alone (the verified run named away), the disagreeing judge is what quality rests on, marked unverified
    only = quality_report("run-a", gate=Gate(0.6, 10), judge_run_id=disagreeing["judge_run_id"])
    (slow,) = [m for m in only["models"] if m["model"] == "slow-big"]
    assert slow["status"] == "unverified" and slow["quality"]["mean"] == pytest.approx(0.85)
