"""core.metrics on hand-made records: every definition of metrics.md, checked by arithmetic."""
import pytest

from core import metrics
from core.engines import RequestRecord


def rec(start=10.0, chunks=(10.1, 10.2, 10.3), end=10.35, usage=None, finish="stop", error=None, queued=9.9,
        texts=None):
    r = RequestRecord(queued_at=queued, start=start, end=end, finish_reason=finish, usage_completion_tokens=usage,
                      error=error)
    r.chunk_times = list(chunks)
    r.text_parts = list(texts or ["a"] * len(chunks))
    r.first_token_at = chunks[0] if chunks else None
    return r


def test_request_row_definitions():
    row = metrics.request_row(rec(usage=5), level_start=9.5)
    assert row["ok"]
    assert row["queue_ms"] == pytest.approx(100)          # its turn -> it left (no slot stamp), not inside TTFT
    assert row["engine_wait_ms"] is None and row["connect_ms"] is None
    assert row["ttft_ms"] == pytest.approx(100)
    assert row["e2e_ms"] == pytest.approx(350)
    assert row["completion_tokens"] == 5 and row["token_count_source"] == "usage"
    assert row["tpot_ms"] == pytest.approx((350 - 100) / 4)   # usage tokens, not 3 chunks
    assert row["chunk_gaps_ms"] == pytest.approx([100, 100])
    assert row["start_offset_s"] == pytest.approx(0.5) and row["end_offset_s"] == pytest.approx(0.85)
    assert metrics.per_s(row["tpot_ms"]) == pytest.approx(1000 / 62.5)
    assert metrics.e2e_output_tokens_per_s(5, 350) == pytest.approx(5 / 0.35)


def test_token_sources_in_order():
    r = rec()
    assert metrics.request_row(r, level_start=10)["token_count_source"] == "chunks"
    r.tokenizer_completion_tokens = 7
    assert metrics.request_row(r, level_start=10)["completion_tokens"] == 7
    assert metrics.request_row(r, level_start=10)["token_count_source"] == "tokenizer"
    r.usage_completion_tokens = 6
    assert metrics.request_row(r, level_start=10)["token_count_source"] == "usage"


def test_no_finish_reason_is_a_failure_and_tpot_needs_two_tokens():
    row = metrics.request_row(rec(finish=None, end=None), level_start=10)
    assert not row["ok"] and row["error"] and row["e2e_ms"] is None
    one = metrics.request_row(rec(chunks=(10.1,), usage=1), level_start=10)
    assert one["ok"] and one["tpot_ms"] is None
    assert metrics.tpot_ms(100, 50, 1) is None and metrics.per_s(None) is None and metrics.per_s(0) is None


def test_aggregate_throughput_uses_the_measured_window():
    rows = [
        {"ok": True, "completion_tokens": 10, "start_offset_s": 0.0, "end_offset_s": 1.0},
        {"ok": True, "completion_tokens": 10, "start_offset_s": 0.5, "end_offset_s": 2.0},
        {"ok": False, "completion_tokens": 3, "start_offset_s": 1.0, "end_offset_s": 4.0},   # failed: window only
    ]
    assert metrics.aggregate_throughput_tok_s(rows) == pytest.approx(20 / 4.0)
    assert metrics.aggregate_throughput_tok_s(rows[2:]) is None


def test_level_result_shape_and_failure_status():
    rows = [metrics.request_row(rec(usage=5, start=10 + i, chunks=(10.1 + i, 10.2 + i), end=10.3 + i), level_start=10)
            for i in range(4)]
    rows.append(metrics.request_row(rec(error="HTTP 500: boom"), level_start=10))
    res = metrics.level_result(rows, model="m", backend="openai", concurrency=1,
                               load={"peak_rss_mb": None, "load_s": 1.5})
    assert tuple(res) == metrics.RESULT_KEYS
    assert res["requests_ok"] == 4 and res["requests_failed"] == 1 and res["status"] == "ok"
    assert res["ttft_ms"]["p50"] == pytest.approx(100)
    assert res["itl_ms"]["mean"] == pytest.approx(50)
    assert res["decode_tokens_per_s"]["mean"] == pytest.approx(20)
    assert res["load_s"] == 1.5 and res["peak_rss_mb"] is None
    bad = metrics.level_result(rows[-1:], model="m", backend="openai", concurrency=1)
    assert bad["status"] == "failed" and bad["error"] == "HTTP 500: boom" and bad["ttft_ms"] is None
    warm_only = metrics.level_result([dict(rows[0], warmup=True)], model="m", backend="openai", concurrency=1)
    assert warm_only["requests_ok"] == 0 and warm_only["status"] == "failed"


def test_outlier_flags_and_sources():
    rows = [{"ok": True, "ttft_ms": 100 + i, "tpot_ms": 10.0, "token_count_source": "usage"} for i in range(10)]
    rows.append({"ok": True, "ttft_ms": 900, "tpot_ms": 10.0, "token_count_source": "tokenizer"})
    rows.append({"ok": False, "ttft_ms": 5000, "tpot_ms": None, "token_count_source": None})
    flags = metrics.outlier_flags(rows)
    assert flags[-2] is True and flags[-1] is False and not any(flags[:10])
    assert metrics.token_count_source(rows) == "mixed:tokenizer,usage"
    assert metrics.cpu_s_per_token(2.0, 100) == pytest.approx(0.02) and metrics.cpu_s_per_token(None, 5) is None


def test_no_interval_from_fewer_than_two_samples():
    from core.stats import bootstrap_ci
    assert bootstrap_ci([]) is None and bootstrap_ci([5.0]) is None     # "n/a", never a zero-width interval
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert lo < hi


def test_queue_wait_engine_wait_and_connect_are_apart_from_ttft():
    r = rec(usage=5, queued=9.7)
    r.slot_at, r.engine_ready_at, r.connect_s = 9.8, 9.95, 0.004
    row = metrics.request_row(r, level_start=9.5)
    assert row["queue_ms"] == pytest.approx(100)          # its turn -> a free slot
    assert row["engine_wait_ms"] == pytest.approx(150)    # slot -> the engine was free (measured)
    assert row["engine_wait_source"] == "measured"
    assert row["connect_ms"] == pytest.approx(4)
    assert row["ttft_ms"] == pytest.approx(100)           # from start: no wait inside


def test_inferred_engine_wait_for_an_engine_serving_one_at_a_time():
    # two requests sent together to a serial engine: the second's service starts when the first ends
    rows = [{"start_offset_s": 0.0, "end_offset_s": 1.0, "ttft_ms": 200.0, "e2e_ms": 1000.0},
            {"start_offset_s": 0.01, "end_offset_s": 2.0, "ttft_ms": 1190.0, "e2e_ms": 1990.0}]
    metrics.infer_engine_wait(rows)
    assert rows[0]["engine_wait_ms"] == 0 and rows[0]["engine_wait_source"] == "inferred"
    assert rows[1]["engine_wait_ms"] == pytest.approx(990)
    assert rows[1]["ttft_ms"] == pytest.approx(200) and rows[1]["e2e_ms"] == pytest.approx(1000)


def test_resumed_level_window_sums_its_sittings_and_small_sample_flag():
    rows = [{"ok": True, "completion_tokens": 10, "start_offset_s": 0.0, "end_offset_s": 1.0, "segment": 0},
            {"ok": True, "completion_tokens": 10, "start_offset_s": 50.0, "end_offset_s": 51.0, "segment": 1}]
    assert metrics.window_s(rows) == pytest.approx(2.0)
    assert metrics.aggregate_throughput_tok_s(rows) == pytest.approx(10.0)
    full = [metrics.request_row(rec(usage=5, start=10 + i, chunks=(10.1 + i, 10.2 + i), end=10.3 + i), level_start=10)
            for i in range(3)]
    res = metrics.level_result(full, model="m", backend="openai", concurrency=1,
                               load={"rss_before_mb": 100.0, "rss_after_load_mb": 250.0, "peak_rss_mb": 400.0})
    assert res["small_sample"] is True
    assert res["weights_mb"] == pytest.approx(150) and res["working_mb"] == pytest.approx(150)
    assert "decode_tokens_per_s" in res and "output_tokens_per_s" not in res
