"""Saved decisions: what a record keeps, names, notes, and the exports built from it."""
import csv
import io
import json

import pytest

from tests.decision import fixture as fx
from core.decision import data, engine, export, record
from core.errors import UserError
from core.store import connect
from tests.support.store import migrated


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "rec.duckdb")))
    fx.add_run("run-a", fx.STANDARD, seed=1)
    with connect() as con:  # a judge pass over the run, as the quality feature stores it
        con.execute("INSERT INTO judge_runs (judge_run_id, run_id, rubric, judge_model, judge_backend, mode, "
                    "template_version, status) VALUES ('j1', 'run-a', 'meeting-notes', 'judge-model', 'foundry', "
                    "'pointwise', 'pointwise-v3', 'completed')")
    monkeypatch.setattr(data, "model_quality", lambda run_id, prefer="human", gate=None: (fx.fake_quality(run_id), None))
    return tmp_path


def _result():
    cands = data.load_candidates(["run-a"])
    return engine.decide(cands, "latency=0.4,quality=0.6", constraints=["peak_rss_mb<=2000"],
                         require_commercial=True, n_boot=50, n_samples=1000)


def test_record_keeps_everything_and_round_trips(db):
    result = _result()
    rec = record.save(record.build_record("Q4 default model", result, ["run-a"], notes="Pilot with sales."))
    back = record.load("Q4 default model")
    assert back["winner"] == result.winner == rec["winner"]
    assert back["weights"] == pytest.approx({"latency": 0.4, "decode_speed": 0, "memory": 0, "quality": 0.6,
                                             "disk": 0, "license": 0, "time_to_notes": 0, "energy": 0})
    assert back["constraints"] == {"constraints": ["peak_rss_mb<=2000"], "require_commercial": True}
    assert back["run_ids"] == ["run-a"] and back["latency_metric"] == "e2e_p95"
    assert back["notes"] == "Pilot with sales."
    run = back["context"]["runs"]["run-a"]
    assert run["prompt_set_hash"] == "abc123" and run["environment"]["cpu_model"] == "test cpu"
    assert run["rubrics"] == ["meeting-notes"]
    assert run["judges"][0]["template_version"] == "pointwise-v3" and run["judges"][0]["judge_model"] == "judge-model"
    # candidates with their numbers and per-model environment
    rows = {r["model"]: r for r in back["result"]["candidates"]}
    assert rows["fast-small"]["criteria"]["quality"] == pytest.approx(0.55)
    assert rows["fast-small"]["environment"]["execution_provider"] == "CPU"
    assert back["result"] == json.loads(json.dumps(result.to_dict()))
    assert "Q4 default model" in record.names()


def test_names_notes_and_missing(db):
    rec = record.build_record("a", _result(), ["run-a"])
    record.save(rec)
    with pytest.raises(UserError, match="exists"):
        record.save(rec)
    record.save(dict(rec, notes="second"), replace=True)
    assert record.load("a")["notes"] == "second"
    record.set_notes("a", "third")
    assert record.load("a")["notes"] == "third"
    with pytest.raises(UserError, match="no saved decision named 'zzz'"):
        record.load("zzz")
    with pytest.raises(UserError, match="needs a name"):
        record.build_record("  ", _result(), ["run-a"])


def test_exports(db, tmp_path):
    rec = record.build_record("export me", _result(), ["run-a"], notes="line 1\nline | 2")
    md = export.markdown_text(rec)
    # (Markdown-escaped: the underscores render as text)
    assert ("| not ranked | mystery · OpenAI-compatible | not ranked: peak\\_rss\\_mb unknown; license unknown: commercial use "
            "not established |") in md
    assert "mystery \\| openai \\| run-a |" in md  # the id in the details column
    assert "Saved " in md and "line 1" in md.split("## Notes")[1]
    assert "rubric meeting-notes" in md and "judge-model template pointwise-v3" in md
    rows = list(csv.DictReader(io.StringIO(export.csv_text(rec))))
    assert [r["passes"] for r in rows] == ["True", "False", "False", "False"]
    assert rows[0]["candidate"] == rec["winner"] and rows[0]["rank"] == "1"
    assert rows[0]["name"] == "fast-small · Foundry Local" and rows[-1]["rank"] == ""   # not ranked: blank
    assert json.loads(export.json_text(rec))["name"] == "export me"
    with pytest.raises(UserError, match="use a .md, .html"):
        export.write_report(rec, tmp_path / "x.docx")
