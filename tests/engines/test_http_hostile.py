"""The HTTP engine never raises out of a request (issue 18): a malformed event, body or usage field fails that
request with one line quoting it, at once; the benchmark goes on with the other requests and models. Real servers
on 127.0.0.1 (tests/support/hostile_server.py)."""
from __future__ import annotations

import json
import time

import pytest

from core.engines import RequestOptions
from core.engines.http import HttpEngine
from tests.support.hostile_server import MALFORMED, MalformedEventsServer
from tests.support.cli import run_cli
from tests.support.store import migrated

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server():
    with MalformedEventsServer() as s:
        yield s


def request(server, model: str, stream: bool = True, timeout: float = 30.0):
    engine = HttpEngine(model, server.base_url)
    engine.open()
    t = time.perf_counter()
    rec = engine.run_one(MSG, RequestOptions(timeout_s=timeout, stream=stream, max_tokens=8))
    return rec, time.perf_counter() - t


@pytest.mark.parametrize("model, field", [
    ("bad-delta", "choices[0].delta is str"), ("bad-content", "delta.content is dict"),
    ("bad-usage", "usage.completion_tokens is 'many'"), ("bad-choices", "choices is dict")])
def test_a_malformed_event_fails_its_request_with_the_event_quoted(server, model, field):
    rec, took = request(server, model)
    assert rec.error is not None and "malformed SSE event" in rec.error and field in rec.error, rec.error
    assert MALFORMED[model][-1][:30] in rec.error.replace("\\'", "'")     # the event, quoted (shortened)
    assert "\n" not in rec.error and len(rec.error) < 300
    assert took < 10      # at once, not after the 30 s timeout


def test_a_body_that_does_not_parse_fails_at_once(server):
    rec, took = request(server, "bad-delta", stream=False, timeout=30)
    assert rec.error is not None and "not a chat completion" in rec.error and "choices[0] is str" in rec.error
    assert took < 10, took      # was: the whole timeout (the parser raised inside the protocol callback)
    ok, _ = request(server, "healthy", stream=False)
    assert ok.error is None and ok.output_text.startswith("ok")


def test_bench_of_two_models_one_answering_malformed_events(server, tmp_path, monkeypatch, capsys):
    """Must show (issue 18): the healthy model is fully measured, the bad one's requests failed with the reason,
    exit 0."""
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["one", "two"]))
    out = tmp_path / "bench.json"
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "b.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    code, _, err = run_cli(capsys, "bench", "--prompts", str(prompts), "--endpoint", server.base_url,
                           "--model", "bad-delta", "--model", "healthy", "--rounds", "2", "--warmup", "0",
                           "--max-tokens", "8", "--json", str(out))
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    res = json.loads(out.read_text())
    import duckdb
    con = duckdb.connect(str(tmp_path / "b.duckdb"), read_only=True)
    rows = con.execute("SELECT model, ok, error, completion_tokens, e2e_ms FROM requests WHERE run_id = ? "
                       "AND NOT warmup", [res["run_id"]]).fetchall()
    con.close()
    healthy = [r for r in rows if r[0] == "healthy"]
    bad = [r for r in rows if r[0] == "bad-delta"]
    assert len(healthy) == 4 and all(r[1] and r[3] == 4 and r[4] is not None for r in healthy)
    assert len(bad) == 4 and all(not r[1] and "malformed SSE event" in r[2] and "oops" in r[2] for r in bad)
