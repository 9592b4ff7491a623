"""The judge against answers built to break it, and structured output in each engine's form
(real HTTP on 127.0.0.1, real DuckDB file, the real CLI)."""
import json

import pytest

from core.cli import main
from core.engines import engine_constraint
from core.quality.judge import (JudgeParseError, PAIRWISE_GRAMMAR, parse_pairwise, parse_pointwise,
                                pointwise_grammar, pointwise_schema)
from core.quality.rubrics import import_rubric, rubric_from_json
from core.store import connect
from tests.support.judge_server import JudgeServer
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated

RUBRIC = rubric_from_json(dict(TEST_RUBRIC))
DEEP = "[" * 5000 + "]" * 5000
HOSTILE = {
    "nan": '{"rationale": "x", "scores": {"coverage": NaN, "faithfulness": 3}}',
    "inf": '{"rationale": "x", "scores": {"coverage": Infinity, "faithfulness": 3}}',
    "minf": '{"rationale": "x", "scores": {"coverage": -Infinity, "faithfulness": 3}}',
    "big": '{"rationale": "x", "scores": {"coverage": 1e400, "faithfulness": 3}}',
    "bigint": '{"rationale": "x", "scores": {"coverage": ' + "9" * 5000 + ', "faithfulness": 3}}',
    "deep": '{"rationale": "x", "scores": ' + DEEP + "}",
    "deepobj": '{"a":' * 5000 + "1" + "}" * 5000,
}


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "q.duckdb")))
    import_rubric(dict(TEST_RUBRIC))
    return tmp_path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_answer_is_a_parse_error_never_another_exception(name):
    with pytest.raises(JudgeParseError):
        parse_pointwise(HOSTILE[name], RUBRIC)
    with pytest.raises(JudgeParseError):
        parse_pairwise(HOSTILE[name])


def test_cli_judge_against_hostile_answers_exits_0_every_judgement_failed_with_raw(db, tmp_path, capsys):
    names = sorted(HOSTILE)
    make_run("rh", {f"p{i}": f"task {i}" for i in range(len(names))},
             {("m", f"p{i}"): f"out-{n}" for i, n in enumerate(names)}, extra_requests=False)

    def script(body):
        user = body["messages"][1]["content"]
        out = user.split("<<<CANDIDATE_OUTPUT ")[1].split(">>>\n", 1)[1].split("\n", 1)[0]
        return HOSTILE[out.removeprefix("out-")]

    out = tmp_path / "j.json"
    with JudgeServer(script) as srv:
        rc = main(["judge", "--run", "rh", "--rubric", "notes", "--judge", "j", "--endpoint", srv.base_url,
                   "--json", str(out), "--retries", "1", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["status"] == "completed" and doc["failed"] == len(names)
    assert all(s["score"] is None and s["status"] == "failed" for s in doc["scores"])
    with connect() as con:
        rows = con.execute("SELECT j.status, j.raw, j.error, q.output_text FROM judgements j JOIN requests q "
                           "ON q.request_id = j.request_id").fetchall()
        scored = con.execute("SELECT count(*) FROM judge_scores").fetchone()[0]
    assert scored == 0 and len(rows) == len(names)
    for status, raw, error, output in rows:
        assert status == "failed"
        assert raw == HOSTILE[output.removeprefix("out-")]        # the raw answer, verbatim
        assert error.startswith("unparseable answer after 2 attempts")


def test_openai_json_schema_falls_back_on_http_500_and_records_unconstrained(db):
    make_run("rf", {"p1": "t"}, {("m", "p1"): "o"}, extra_requests=False)
    good = json.dumps({"rationale": "fine", "scores": {"coverage": 4, "faithfulness": 5}})

    def script(body):
        if "response_format" in body:
            return {"status": 500, "body": "Input should be 'text' or 'json_object'"}
        return good

    from core.quality.judge import JudgeModel, run_judge
    with JudgeServer(script) as srv:
        doc = run_judge("rf", "notes", JudgeModel("j", "openai", srv.base_url, max_tokens=50, timeout=10))
        kinds = [b.get("response_format", {}).get("type") for b in srv.requests]
    assert kinds == ["json_schema", None]
    assert doc["failed"] == 0 and doc["constrained"] == 0
    with connect() as con:
        assert con.execute("SELECT constrained, rubric_version FROM judgements").fetchall() == [(False, 1)]


def test_each_engine_gets_its_own_structured_form():
    schema = pointwise_schema(RUBRIC, bounded=True)
    rf, g = engine_constraint("llamacpp", schema, "start: x")
    assert rf == {"type": "json_object", "schema": schema} and g is None
    rf, g = engine_constraint("openai", schema, "start: x")
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] is schema and g is None
    assert engine_constraint("foundry", schema, "start: x") == (None, "start: x")
    assert schema["properties"]["scores"]["properties"]["coverage"]["enum"] == [1, 2, 3, 4, 5]
    assert schema["properties"]["rationale"]["maxLength"] == 400


def test_grammar_matches_exactly_the_reply_object():
    lark = pytest.importorskip("lark")
    # llguidance's Lark dialect is close to lark's own for what the judge uses: literals, alternatives
    # and one bounded regex terminal. lark refuses terminals that can match nothing, so here the
    # rationale needs one character (llguidance takes the empty one too).
    parser = lark.Lark(pointwise_grammar(RUBRIC).replace("{0,400}", "{1,400}"), start="start")
    ok = '{"rationale": "covers it", "scores": {"coverage": 4, "faithfulness": 5}}'
    parser.parse(ok)
    assert parse_pointwise(ok, RUBRIC) == ({"coverage": 4, "faithfulness": 5}, "covers it")
    for bad in ('{"rationale": "x", "scores": {"coverage": 6, "faithfulness": 5}}',
                '{"rationale": "x", "scores": {"faithfulness": 5, "coverage": 4}}',
                '{"rationale": "a "quote"", "scores": {"coverage": 4, "faithfulness": 5}}'):
        with pytest.raises(lark.exceptions.LarkError):
            parser.parse(bad)
    lark.Lark(PAIRWISE_GRAMMAR.replace("{0,400}", "{1,400}"), start="start").parse(
        '{"rationale": "b is better", "winner": "tie"}')
