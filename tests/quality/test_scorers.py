"""The automatic scorers as a rater: three endpoint models whose notes are known answer the meeting-notes set;
`check` scores them, `scores` ranks them with the scorers as an unverified source, `decide` picks the best
and says quality is not yet trusted; a person agreeing with the scorer on 20 outputs makes it verified.
Also the scorers one by one, the paired verdict, the scoring order and the default judge."""
import json

import pytest

from core.cli import main
from core.config import DATA_DIR
from core.quality.embedding import available
from tests.support import judge_server

pytestmark = pytest.mark.skipif(not available(), reason="the embedding model is built by `python -m core setup-models`")

PROMPTS = json.loads((DATA_DIR / "prompts" / "meeting_notes.json").read_text())
EXPECT = json.loads((DATA_DIR / "prompts" / "meeting_notes_expectations.json").read_text())
IDS = [p["id"] for p in PROMPTS]
MODELS = ("notes-full", "notes-first-section", "notes-next-meeting")


def reference(pid: str) -> str:
    return EXPECT[pid]["reference_answer"]


def known_notes(model: str, pid: str) -> str:
    """Each meeting's reference notes; only their first section; the next meeting's reference notes."""
    if model == "notes-full":
        return reference(pid)
    if model == "notes-first-section":
        return reference(pid).split("\n\n")[0]
    return reference(IDS[(IDS.index(pid) + 1) % len(IDS)])


def _answer(body: dict) -> str:
    text = body["messages"][-1]["content"]
    pid = next(p["id"] for p in PROMPTS if p["text"] == text)
    return known_notes(body["model"], pid)


class _NotesHandler(judge_server._Handler):
    def do_GET(self) -> None:   # the three models, listed as an endpoint lists what it serves
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"}
                                                             for m in MODELS]})
        else:
            super().do_GET()


class NotesServer(judge_server.JudgeServer):
    """The scripted server, serving the three models of known notes."""

    def start(self) -> None:
        from http.server import ThreadingHTTPServer
        import threading

        handler = type("Handler", (_NotesHandler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()


def bench_and_check(tmp) -> dict:
    """A real benchmark run of the three endpoint models into the store SLM_DB names, then `check`."""
    with NotesServer(_answer) as srv:
        args = ["bench", "--prompts", str(DATA_DIR / "prompts" / "meeting_notes.json"), "--endpoint", srv.base_url,
                "--rounds", "1", "--warmup", "0", "--max-tokens", "400", "--json", str(tmp / "bench.json")]
        for m in MODELS:
            args += ["--model", m]
        assert main(args) == 0
    run_id = json.loads((tmp / "bench.json").read_text())["run_id"]
    assert main(["check", "--run", run_id, "--json", str(tmp / "check.json"), "--quiet"]) == 0
    return {"run": run_id, "tmp": tmp, "check": json.loads((tmp / "check.json").read_text())}


def _env(mp, db) -> None:
    mp.setenv("SLM_DB", str(db))
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT"):
        mp.delenv(name, raising=False)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Read-only for the tests that use it (module scope: one benchmark and one `check`)."""
    tmp = tmp_path_factory.mktemp("scorers")
    mp = pytest.MonkeyPatch()
    _env(mp, tmp / "q.duckdb")
    yield bench_and_check(tmp)
    mp.undo()


def _scores(checked, name="scores.json") -> dict:
    out = checked["tmp"] / name
    assert main(["scores", "--run", checked["run"], "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_check_scores_every_output_and_is_stored_as_a_versioned_rater(checked):
    doc = checked["check"]
    assert doc["rubric"] == "meeting_notes" and doc["scorer"] == "auto-scorers/1"
    assert len(doc["scores"]) == len(MODELS) * len(IDS)
    assert all(set(r["scores"]) == {"coverage", "faithfulness", "concision", "format"} for r in doc["scores"])
    assert doc["checks"] and set(doc["check_pass_rate"]) == set(MODELS)
    from core.store import quality as qstore
    (jr,) = [j for j in qstore.judge_runs(checked["run"]) if j["judge_run_id"] == doc["judge_run_id"]]
    assert (jr["judge_backend"], jr["template_version"], jr["status"]) == ("automatic", "auto-scorers/1", "completed")
    assert "SIM_LOW" in qstore.template_text("auto-scorers/1")


def test_scores_rank_the_known_notes_in_order_with_the_scorer_as_unverified_source(checked):
    doc = _scores(checked)
    q = {m["model"]: m["quality"]["mean"] for m in doc["models"]}
    assert sorted(q, key=q.get, reverse=True) == list(MODELS)
    assert q["notes-full"] - q["notes-next-meeting"] >= 0.3
    for m in doc["models"]:
        assert m["source"] == "auto-scorers/1" and m["status"] == "unverified"
        assert m["quality"]["n"] == len(IDS)
    assert doc["rater"]["kind"] == "scorers" and doc["rater"]["trusted"] is False
    (best_vs_last,) = [p for p in doc["paired"] if p["model_b"] == "notes-next-meeting"]
    assert best_vs_last["verdict"] == "a_better" and best_vs_last["n"] == len(IDS)
    assert best_vs_last["sentence"].startswith("notes-full is better on quality than notes-next-meeting: +")
    assert best_vs_last["sentence"].endswith(f"over {len(IDS)} prompts")


def test_decide_on_quality_alone_picks_the_full_notes_and_says_quality_is_not_trusted(checked):
    out = checked["tmp"] / "decide.json"
    assert main(["decide", "--runs", checked["run"], "--weights", "quality=1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    winner = next(c for c in doc["candidates"] if c["candidate"] == doc["winner"])
    assert winner["model"] == "notes-full"
    assert any(f.startswith("notes-full is better on quality than notes-next-meeting") for f in doc["findings"])
    from core.decision.report import verdict
    line = verdict(doc)
    assert "Quality (100% of the weight) is not yet trusted: it rests on auto-scorers/1" in line
    assert "score 20 more of its outputs by hand" in line


def test_present_shows_the_paired_quality_sentence_and_that_quality_is_not_trusted(checked):
    from streamlit.testing.v1 import AppTest
    from core.config import REPO_ROOT

    assert main(["decide", "--runs", checked["run"], "--weights", "quality=1", "--save", "notes-q"]) == 0
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/present.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [t.value for t in at.text]
    assert any(t.startswith("notes-full is better on quality than notes-next-meeting: +") for t in texts), texts
    assert any("is not yet trusted: it rests on auto-scorers/1" in t for t in texts), texts


def test_the_gate_verifies_the_scorer_after_20_outputs_a_person_scored_in_agreement(tmp_path, monkeypatch):
    from core.quality.calibration import Gate
    from core.quality.scores import quality_report
    from core.store import quality as qstore

    _env(monkeypatch, tmp_path / "gate.duckdb")
    checked = bench_and_check(tmp_path)
    rows = checked["check"]["scores"]
    def person(batch):
        qstore.save_human_scores([{"run_id": checked["run"], "request_id": r["request_id"], "rubric": "meeting_notes",
                                   "rater": "ana", "comment": None,
                                   "scores": {c: float(min(5, max(1, round(v)))) for c, v in r["scores"].items()}}
                                  for r in batch])
    person(rows[:19])
    below = quality_report(checked["run"], gate=Gate())
    assert below["rater"]["trusted"] is False and "only 19 co-scored outputs" in below["rater"]["reason"]
    person(rows[19:20])
    doc = _scores(checked, "scores-verified.json")
    assert doc["rater"]["trusted"] is True and doc["rater"]["n_outputs"] == 20 and doc["rater"]["kappa"] >= 0.6
    statuses = {m["model"]: m["status"] for m in doc["models"]}
    assert set(statuses.values()) == {"verified"}
    # people's scores are used where they exist: the models they scored name both sources
    assert {m["source"] for m in doc["models"]} <= {"people + auto-scorers/1", "auto-scorers/1"}
    # Score by hand: the prompts ana scored whole (the first 6: 3 outputs each) are marked; the order holds still
    from core.quality.paired import scoring_priority
    order = scoring_priority(checked["run"], "meeting_notes", rater="ana")
    assert {r["prompt_id"] for r in order if r["scored"]} == set(IDS[:6])
    assert [r["prompt_id"] for r in order] == [r["prompt_id"] for r in scoring_priority(checked["run"], "meeting_notes")]


# ------------------------------------------------------------------ the scorers one by one

class FakeRubric:
    pass


def test_coverage_separates_a_meeting_from_another_meetings_notes():
    from core.quality.embedding import load_embedder
    from core.quality.scorers import coverage

    emb = load_embedder()
    aspects = EXPECT["mn-01"]["expected_aspects"]
    own, _ = coverage(reference("mn-01"), aspects, [], emb)
    other, detail = coverage(reference("mn-02"), aspects, [], emb)
    empty, _ = coverage("", aspects, [], emb)
    assert own > 0.8 and other < 0.4 and empty == 0.0
    assert len(detail["aspects"]) == len(aspects)
    assert load_embedder() is emb    # loaded once


def test_faithfulness_flags_names_and_dates_the_transcript_lacks():
    from core.quality.scorers import faithfulness

    transcript = "Priya: Release 4.2 stays on Monday 16 June. Kofi renews the certificate."
    ok, d_ok = faithfulness("Decisions\n- Release 4.2 stays on Monday 16 June.\nAction items\n- Kofi: renew it.",
                            transcript, [])
    bad, d_bad = faithfulness("- Release 4.3 moves to Monday 23 June; Olga renews it.", transcript,
                              [{"kind": "not_contains", "value": "23 June"}])
    assert ok == 1.0 and d_ok["unsupported"] == []
    assert set(d_bad["unsupported"]) >= {"4.3", "23", "Olga"} and d_bad["must_not_include_found"] == ["23 June"]
    assert bad < 0.2


def test_concision_and_format_against_their_limits():
    from core.quality.scorers import concision, form

    assert concision("one two three", [5], None)[0] == 1.0
    assert concision(" ".join(["w"] * 15), [10], None)[0] == pytest.approx(0.5)
    assert concision(" ".join(["w"] * 30), [10], None)[0] == 0.0
    assert concision("a b c d e", [], "a b")[1]["limit"] == 4
    checks = [{"kind": "regex", "pattern": "decision", "flags": "i"}, {"kind": "list_items", "min": 1}]
    assert form("Decisions\n- none", checks)[0] == 1.0
    assert form("no structure at all", checks)[0] == 0.0


# ------------------------------------------------------------------ paired verdicts and effort

def test_paired_verdict_better_or_too_close():
    from core.quality.paired import paired_difference, prompts_needed, verdict

    a = {f"p{i}": 0.8 + 0.01 * (i % 3) for i in range(12)}
    b = {f"p{i}": 0.5 for i in range(12)}
    v = verdict("A", "B", paired_difference(a, b))
    assert v["verdict"] == "a_better" and v["sentence"].startswith("A is better on quality than B: +0.31")
    v = verdict("B", "A", paired_difference(b, a))
    assert v["verdict"] == "b_better" and v["sentence"].startswith("A is better on quality than B: +0.31")
    noisy = {f"p{i}": 0.5 + (0.2 if i % 2 else -0.2) for i in range(12)}
    v = verdict("A", "B", paired_difference(noisy, b))
    assert v["verdict"] == "too_close" and "too close to call on quality" in v["sentence"]
    assert verdict("A", "B", paired_difference({"p0": 1.0}, {"p0": 0.0}))["verdict"] == "no_data"
    # n = ((1.96 + 0.84) * sd / delta)^2: sd 0.2, delta 0.1 -> 31.4 -> 32
    assert prompts_needed(0.2, 0.1) == 32 and prompts_needed(None) is None


def test_scoring_order_puts_the_prompts_where_candidates_differ_most_first(checked):
    from core.quality.paired import scoring_priority

    rows = scoring_priority(checked["run"], "meeting_notes", rater="nobody-yet")
    assert len(rows) == len(IDS) and not any(r["scored"] for r in rows)
    assert [r["priority"] for r in rows] == sorted((r["priority"] for r in rows), reverse=True)
    assert rows[0]["spread"] > 0.3


def test_the_default_judge_is_not_a_base_model():
    from core.quality.views import default_judge_index

    models = [{"id": "gemma-3-270m-int4-generic-cpu:1", "display_name": "Gemma 3 270M base (int4)"},
              {"id": "smollm2-135m-instruct-int4-generic-cpu:1", "display_name": "SmolLM2 135M Instruct (int4)"}]
    assert default_judge_index(models) == 1
    assert default_judge_index([{"id": "x-base"}, {"id": "y"}]) == 1
    assert default_judge_index([{"id": "only-base", "display_name": "Only base"}]) == 0


def test_the_long_meetings_set_has_its_rubric_for_the_scorers():
    from core.quality.rubrics import load_rubric_file

    rub = load_rubric_file(DATA_DIR / "rubrics" / "long_meetings.json")
    lm = json.loads((DATA_DIR / "prompts" / "long_meetings.json").read_text())
    assert rub.prompt_set == "long_meetings" and set(rub.prompts) == {p["id"] for p in lm}
    assert rub.criterion_names == ["coverage", "faithfulness", "concision", "format"]
    assert all(p.expected_aspects and p.reference_answer for p in rub.prompts.values())
