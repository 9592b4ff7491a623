"""The HTTP engine against our own OpenAI-compatible server, one injected fault at a time."""
import pytest

from core import metrics
from core.engines import RequestOptions, chat_once
from core.engines.http import HttpEngine
from core.errors import UserError
from tests.support.openai_server import OpenAITestServer

MSG = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server():
    with OpenAITestServer(models=["tiny"]) as s:
        yield s


def one(server, model, **opts):
    engine = HttpEngine(model, server.base_url)
    engine.open()
    rec = engine.run_one(MSG, RequestOptions(**{"timeout_s": 5.0, **opts}))
    return rec, metrics.request_row(rec, level_start=rec.start or 0.0)


def test_normal_stream_times_and_usage(server):
    rec, row = one(server, "tiny;ttft=0.05;tok=0.01;n=6")
    assert row["ok"] and row["error"] is None
    assert row["finish_reason"] == "stop"
    assert row["completion_tokens"] == 6 and row["token_count_source"] == "usage"
    assert row["prompt_tokens"] == 2          # the prompt's tokens are kept apart, never as output
    assert row["output_text"] == "w0 w1 w2 w3 w4 w5 "
    # the role-only first chunk (content "") is not the first token: TTFT waits for the 50 ms delay
    assert row["ttft_ms"] >= 50
    assert row["chunk_count"] == 6 and len(row["chunk_gaps_ms"]) == 5
    assert sum(row["chunk_gaps_ms"]) == pytest.approx((rec.chunk_times[-1] - rec.chunk_times[0]) * 1000)
    assert row["e2e_ms"] >= 100 and row["e2e_ms"] > row["ttft_ms"]   # last chunk due 50 + 5 x 10 ms after receipt
    assert row["tpot_ms"] == pytest.approx((row["e2e_ms"] - row["ttft_ms"]) / 5)


def test_http_500_is_a_failed_request_with_its_error(server):
    rec, row = one(server, "tiny;fault=500")
    assert not row["ok"]
    assert row["error"].startswith("HTTP 500") and "injected server error" in row["error"]
    assert row["e2e_ms"] is None and row["tpot_ms"] is None
    assert [e for e in server.log if e.model == "tiny;fault=500"].__len__() == 1   # no silent retry


def test_connection_dropped_mid_stream_is_failed_not_short(server):
    rec, row = one(server, "tiny;fault=drop;n=10")
    assert not row["ok"]
    assert "connection dropped mid-stream" in row["error"]
    assert 0 < row["chunk_count"] < 10        # tokens had arrived: still not a short answer
    assert row["e2e_ms"] is None
    assert len([e for e in server.log if e.model == "tiny;fault=drop;n=10"]) == 1


def test_non_json_sse_line_fails_the_request(server):
    rec, row = one(server, "tiny;fault=badjson;n=8")
    assert not row["ok"]
    assert "non-JSON SSE" in row["error"]


def test_stall_is_cut_by_the_timeout(server):
    rec, row = one(server, "tiny;fault=stall;n=8", timeout_s=0.5)
    assert not row["ok"]
    assert "timed out after 0.5 s" in row["error"] and "stalled" in row["error"]


def test_no_finish_reason_is_truncated(server):
    rec, row = one(server, "tiny;fault=nofinish;n=4")
    assert not row["ok"]
    assert "without a finish reason" in row["error"]


def test_no_usage_chunk_counts_chunks_and_says_so(server):
    rec, row = one(server, "tiny;fault=nousage;n=5")
    assert row["ok"]
    assert row["completion_tokens"] == 5 and row["token_count_source"] == "chunks"


def test_no_usage_chunk_uses_the_tokenizer_when_there_is_one(server):
    engine = HttpEngine("tiny;fault=nousage;n=5", server.base_url, count_tokens=lambda s: len(s.split()))
    engine.open()
    rec = engine.run_one(MSG, RequestOptions(timeout_s=5))
    rec.tokenizer_completion_tokens = engine.count_tokens(rec.output_text)
    row = metrics.request_row(rec, level_start=rec.start)
    assert row["completion_tokens"] == 5 and row["token_count_source"] == "tokenizer"


def test_two_tokens_per_chunk_counts_tokens_not_chunks(server):
    rec, row = one(server, "tiny;tpc=2;n=10;tok=0.004")
    assert row["ok"]
    assert row["chunk_count"] == 5
    assert row["completion_tokens"] == 10 and row["token_count_source"] == "usage"
    # TPOT divides by tokens - 1, not chunks - 1
    assert row["tpot_ms"] == pytest.approx((row["e2e_ms"] - row["ttft_ms"]) / 9)


def test_keep_alive_reuses_connections_across_requests(server):
    engine = HttpEngine("tiny;n=3", server.base_url)
    engine.open()
    import asyncio

    async def go():
        recs = []
        for _ in range(5):
            from core.engines import RequestRecord
            rec = RequestRecord()
            await engine.arequest(MSG, RequestOptions(timeout_s=5), rec)
            recs.append(rec)
        n_idle = len(engine._pool.idle)
        engine.finish_level()
        return recs, n_idle
    recs, n_idle = asyncio.run(go())
    assert all(r.error is None for r in recs)
    assert n_idle == 1


def test_chat_once_returns_text_and_usage(server):
    res = chat_once("openai", "tiny;n=4", MSG, endpoint=server.base_url, max_tokens=3)
    assert res.text == "w0 w1 w2 " and res.finish_reason == "length"
    assert res.completion_tokens == 3 and res.token_count_source == "usage" and res.prompt_tokens == 2


def test_chat_once_errors_are_one_line_user_errors(server):
    with pytest.raises(UserError, match="HTTP 500"):
        chat_once("openai", "tiny;fault=500", MSG, endpoint=server.base_url)
    with pytest.raises(UserError, match="unknown backend"):
        chat_once("nope", "x", MSG)


def test_unreachable_endpoint_is_a_user_error():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="unreachable"):
        HttpEngine("tiny", f"http://127.0.0.1:{port}/v1").open()
