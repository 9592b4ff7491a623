"""Interleaving that keeps a level's concurrency (connections warmed outside the window, throughput over each
turn's steady part, one candidate run as one turn) and the run's one timeline, on real servers of known timing."""
import json
from datetime import datetime

import pytest

from core import metrics
from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.run.order import choose_order
from core.bench.run.runner import run_benchmark
from core.bench.run.timeline import run_timeline, timeline_chart
from core.store import bench as db
from tests.support.openai_server import OpenAITestServer

A, B = "a;ttft=0.01;tok=0.002;n=5", "b;ttft=0.02;tok=0.002;n=5"
A_CLOSE, B_CLOSE = A + ";close=1", B + ";close=1"


@pytest.fixture(scope="module")
def server():
    with OpenAITestServer(models=[A, B, A_CLOSE, B_CLOSE]) as s:
        yield s


@pytest.fixture(autouse=True)
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(tmp_path / "run.duckdb"))


def _turn(start: float, n_waves: int, c: int, tail_s: float, turn: int, tokens: int = 10) -> list[dict]:
    """A closed loop of ``c`` slots, each request 1 s, ``n_waves`` waves; the last request takes ``tail_s``."""
    rows = []
    for w in range(n_waves):
        for _ in range(c):
            rows.append({"ok": True, "completion_tokens": tokens, "concurrency": c, "turn": turn,
                         "start_offset_s": start + w, "end_offset_s": start + w + 1.0})
    rows[-1]["end_offset_s"] = rows[-1]["start_offset_s"] + tail_s
    return rows


def test_throughput_is_the_steady_part_of_each_turn():
    # 2 slots x 10 tokens/s = 20 tokens/s while every slot is busy; one straggler at the end (a 5 s request)
    one = _turn(0.0, 4, 2, tail_s=5.0, turn=0)
    assert metrics.window_s(one) == pytest.approx(8.0)                    # the whole turn, drain included
    assert metrics.aggregate_throughput_tok_s(one) == pytest.approx(20.0)  # ramp-up and drain left out
    # the same requests cut into two interleaved turns read the same, not less
    two = _turn(0.0, 2, 2, tail_s=5.0, turn=0) + _turn(0.0, 2, 2, tail_s=5.0, turn=1)
    assert metrics.aggregate_throughput_tok_s(two) == pytest.approx(20.0)
    # a turn with no steady part (fewer requests than slots) counts whole; rows without a level: whole window
    short = [dict(r, concurrency=4) for r in _turn(0.0, 1, 2, tail_s=3.0, turn=0)]
    assert metrics.aggregate_throughput_tok_s(short) == pytest.approx(20 / 3.0)
    plain = [{k: v for k, v in r.items() if k != "concurrency"} for r in one]
    assert metrics.aggregate_throughput_tok_s(plain) == pytest.approx(80 / 8.0)


def test_turns_at_concurrency_hold_enough_rounds_for_a_steady_part():
    from core.bench.run.order import MIN_TURN_WAVES, turn_rounds
    assert MIN_TURN_WAVES == 4
    from core.bench.run.schedule import Item

    def todo(rounds, per_round):
        return [Item({"id": str(i)}, r, False) for r in range(1, rounds + 1) for i in range(per_round)]
    assert turn_rounds([todo(3, 3)], 1) == [[1], [2], [3]]                     # one slot: every round a turn
    assert turn_rounds([todo(5, 10), todo(5, 10)], 4) == [[1, 2], [3, 4], [5]]   # 10 a round, 16 needed: 2 rounds
    assert turn_rounds([todo(20, 50)], 32) == [list(range(k, k + 3)) for k in range(1, 19, 3)] + [[19, 20]]
    assert turn_rounds([todo(2, 5)], 64) == [[1, 2]] and turn_rounds([[]], 4) == []


def test_one_candidate_has_nothing_to_interleave():
    one = choose_order([ModelSpec(model="a", backend="openai", endpoint="http://x/v1")], "interleaved",
                       available_mb=1e6)
    assert one["order"] == "blocked" and one["requested"] == "interleaved"
    assert "nothing to interleave" in one["reason"]


def _run(server, models, order="interleaved", concurrency=4, rounds=3, prompts=8):
    ps = parse_prompts([f"prompt {i}" for i in range(prompts)], name="t")
    specs = [ModelSpec(model=m, backend="openai", endpoint=server.base_url) for m in models]
    return run_benchmark(specs, ps, Settings(rounds=rounds, warmup=2, max_tokens=8, order=order,
                                             concurrency=[concurrency]), energy_baseline_s=0)


def test_interleaved_turns_use_warm_connections_and_lie_on_one_timeline(server):
    out = _run(server, [A, B])
    assert out.status == "completed"
    df = db.run_requests(out.run_id, include_warmup=True)
    measured = df[~df["warmup"]]
    # keep-alive server: every connection was opened before a measured window, none inside one
    assert measured["connect_ms"].isna().all()
    assert df[df["warmup"]]["connect_ms"].notna().sum() <= 2 * 4   # at most the slots, per model
    # one clock: each turn's run times are its turn-relative times shifted by one constant
    for _, t in measured.groupby("turn"):
        shift = t["run_start_s"] - t["start_offset_s"]
        assert shift.max() - shift.min() < 1e-9
        assert ((t["run_end_s"] - t["end_offset_s"]) - shift.iloc[0]).abs().max() < 1e-9
    # the turns follow one another on it, never overlapping: interleaving is visible
    spans = measured.groupby("turn").agg(first=("run_start_s", "min"), last=("run_end_s", "max"),
                                         models=("model", "nunique")).sort_index()
    # 8 prompts a round at concurrency 4: two rounds make a turn of 16 requests (MIN_TURN_WAVES x 4), so 2 turns each
    assert (spans["models"] == 1).all() and len(spans) == 4
    assert (spans["first"].iloc[1:].to_numpy() >= spans["last"].iloc[:-1].to_numpy()).all()
    tl = run_timeline(out.run_id)
    assert datetime.fromisoformat(tl["started_utc"]).utcoffset().total_seconds() == 0
    assert len(tl["requests"]) == len(df)
    starts = [r["run_start_s"] for r in tl["requests"]]
    assert starts == sorted(starts) and starts[0] >= 0
    chart = timeline_chart(df).to_dict()
    assert chart["encoding"]["x"]["field"] == "run_start_s" and chart["encoding"]["color"]["field"] == "turn"


def test_a_server_that_closes_connections_gets_one_per_request(server):
    out = _run(server, [A_CLOSE, B_CLOSE], concurrency=8, rounds=2, prompts=16)
    assert out.status == "completed"
    measured = db.run_requests(out.run_id)
    assert len(measured) == 2 * 2 * 16 and measured["ok"].all()
    # both rounds make one turn (32 requests = MIN_TURN_WAVES x 8); its first wave (8 slots) used connections
    # warmed before the window; each later request opened its own
    opened = measured.groupby("turn")["connect_ms"].apply(lambda s: int(s.notna().sum()))
    assert len(opened) == 2 and (opened == 32 - 8).all()
    for r in out.results:
        assert r["throughput_tok_s"] > 0


def test_cli_json_has_the_run_timeline(server, tmp_path):
    from core.cli import main
    path = tmp_path / "run.json"
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["one", "two"]))
    code = main(["bench", "--endpoint", server.base_url, "--model", A, "--model", B, "--prompts", str(prompts),
                 "--rounds", "2",
                 "--warmup", "1", "--max-tokens", "4", "--json", str(path)])
    assert code == 0
    doc = json.loads(path.read_text())
    tl = doc["timeline"]
    assert tl["started_utc"] and len(tl["requests"]) == len(db.run_requests(doc["run_id"], include_warmup=True))
    assert {"model", "turn", "run_start_s", "run_end_s", "warmup"} <= set(tl["requests"][0])
    assert all(r["run_end_s"] >= r["run_start_s"] for r in tl["requests"])
