"""Blind scoring by hand: order per prompt, stable on reload; progress and resume; annotation CSV."""
import csv
import io
import json
import os
import subprocess
import sys

import pytest

from core.config import REPO_ROOT
from core.errors import UserError
from core.quality.blind import (blind_order, blind_session, export_annotations, import_annotations,
                                save_prompt_scores)
from core.quality.rubrics import import_rubric
from core.store import connect
from core.store import quality as qstore
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated

MODELS = ["smollm2-135m", "gemma-3-270m", "phi-4-mini", "qwen2.5-0.5b"]
PROMPTS = {f"p{i}": f"task {i}" for i in range(1, 7)}


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "b.duckdb")))
    import_rubric(dict(TEST_RUBRIC))
    ids = make_run("rb", PROMPTS, {(m, p): f"{m} says {p}" for m in MODELS for p in PROMPTS})
    return ids


def _orders(session):
    return {p.prompt_id: [c.model for c in p.candidates] for p in session.prompts}


def test_order_differs_between_prompts_and_is_stable_on_reload(run, tmp_path):
    s = blind_session("rb", "notes", "ana")
    orders = _orders(s)
    assert [p.prompt_id for p in s.prompts] == list(PROMPTS)      # prompts in run order
    assert all(sorted(o) == sorted(MODELS) for o in orders.values())
    assert len({tuple(o) for o in orders.values()}) > 1            # differs between prompts
    assert orders != {p: sorted(MODELS) for p in PROMPTS}          # not the sorted order
    assert _orders(blind_session("rb", "notes", "ana")) == orders  # same again
    assert _orders(blind_session("rb", "notes", "  ana ")) == orders  # rater name normalised
    assert _orders(blind_session("rb", "notes", "ben")) != orders  # another rater, another shuffle
    # reload in a fresh process (what a page reload or another machine does)
    code = ("import json; from core.quality.blind import blind_session; "
            "s = blind_session('rb', 'notes', 'ana'); "
            "print(json.dumps({p.prompt_id: [c.model for c in p.candidates] for p in s.prompts}))")
    env = {**os.environ, "SLM_DB": os.environ["SLM_DB"]}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == orders
    # slots are letters; the model is only in the (hidden) field
    assert [c.slot for c in s.prompts[0].candidates] == ["A", "B", "C", "D"]
    assert blind_order("rb", "p1", "ana", ["x", "y", "z"]) == blind_order("rb", "p1", "ana", ["z", "y", "x"])


def test_progress_resume_and_comment(run):
    s = blind_session("rb", "notes", "ana")
    assert (s.done_count, s.total, s.resume_index()) == (0, 6, 0)
    p = s.prompts[0]
    entries = {c.request_id: ({"coverage": 4, "faithfulness": 5}, "clear" if i == 0 else "") for i, c in enumerate(p.candidates)}
    save_prompt_scores("rb", "notes", "ana", entries)
    s2 = blind_session("rb", "notes", "ana")
    assert (s2.done_count, s2.resume_index()) == (1, 1)
    assert s2.prompts[0].candidates[0].comment == "clear"
    assert s2.prompts[0].candidates[0].scores == {"coverage": 4, "faithfulness": 5}
    assert blind_session("rb", "notes", "ben").done_count == 0    # per rater
    with pytest.raises(UserError, match="missing: faithfulness"):
        save_prompt_scores("rb", "notes", "ana", {p.candidates[0].request_id: ({"coverage": 3}, "")})
    with pytest.raises(UserError, match="from 1 to 5"):
        save_prompt_scores("rb", "notes", "ana", {p.candidates[0].request_id: ({"coverage": 6, "faithfulness": 1}, "")})
    with pytest.raises(UserError, match="rater name"):
        save_prompt_scores("rb", "notes", "  ", entries)


def _csv(rows, header):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _filled(text, value="3"):
    rows = list(csv.DictReader(io.StringIO(text)))
    for r in rows:
        r["coverage"], r["faithfulness"] = value, value
    return rows, list(rows[0])


def test_annotation_roundtrip(run):
    text = export_annotations("rb", "notes", "ana")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 24
    assert list(rows[0]) == ["run_id", "rubric", "rater", "prompt_id", "candidate", "item_id", "prompt", "output",
                             "coverage", "faithfulness", "comment"]
    assert not any(m in rows[0]["item_id"] for m in MODELS)  # nothing names the model
    filled, header = _filled(text, "4")
    filled[0]["comment"] = "multi\nline, with \"quotes\""
    filled[5]["coverage"] = filled[5]["faithfulness"] = ""   # left blank: skipped, not refused
    res = import_annotations(_csv(filled, header).encode(), rater="ana")
    assert res == {"rows": 23, "skipped": 1, "run_id": "rb", "rubric": "notes", "rater": "ana"}
    assert len(qstore.human_scores("rb", "notes", "ana")) == 46
    # re-export shows the saved scores and the comment in the same blind order
    again = list(csv.DictReader(io.StringIO(export_annotations("rb", "notes", "ana"))))
    assert [r["item_id"] for r in again] == [r["item_id"] for r in rows]
    assert again[0]["comment"] == "multi\nline, with \"quotes\"" and again[0]["coverage"] == "4"
    assert again[5]["coverage"] == ""


def _bad_cases(text):
    """(name, csv text or bytes, expected message part) -- each must be refused whole."""
    good, header = _filled(text)
    cases = []

    def variant(name, mutate, msg, hdr=None):
        rows = [dict(r) for r in good]
        mutate(rows)
        cases.append((name, _csv(rows, hdr or header), msg))

    # line numbers: header is line 1, the rows are single-line except the prompt/output (one line here)
    variant("score out of scale", lambda rs: rs[9].update(coverage="7"), "line 11: score for 'coverage' must be a whole number from 1 to 5")
    variant("not a number", lambda rs: rs[20].update(faithfulness="good"), "line 22: score for 'faithfulness' must be a number")
    variant("half-scored row", lambda rs: rs[3].update(faithfulness=""), "line 5: score missing for faithfulness")
    variant("unknown item", lambda rs: rs[2].update(item_id="deadbeef0000"), "line 4: item_id 'deadbeef0000' is not an output of run rb")
    variant("item under the wrong prompt", lambda rs: rs[1].update(prompt_id="p6"), "line 3: item_id")
    variant("slot mismatch", lambda rs: rs[0].update(candidate="D" if rs[0]["candidate"] != "D" else "A"), "line 2: candidate")
    variant("other rater mid-file", lambda rs: rs[7].update(rater="ben"), "line 9: rater 'ben' differs")
    variant("duplicate item", lambda rs: rs.__setitem__(12, dict(rs[11])), "line 14: item")
    variant("other run", lambda rs: [r.update(run_id="zz") for r in rs], "line 2: unknown run 'zz'")
    cases.append(("missing column", _csv([{k: v for k, v in r.items() if k != "faithfulness"} for r in good],
                                         [h for h in header if h != "faithfulness"]),
                  "line 1: missing criterion column(s) faithfulness"))
    cases.append(("ragged row", _csv(good, header) + "rb,notes,ana,p1\n", "line 26: 4 fields, the header has 11"))
    cases.append(("not utf-8", "run_id\n\xff\xfe".encode("latin-1"), "not UTF-8"))
    cases.append(("empty", "", "empty"))
    return cases


def test_bad_annotation_files_refused_whole(run):
    text = export_annotations("rb", "notes", "ana")
    for name, content, msg in _bad_cases(text):
        data = content if isinstance(content, bytes) else content.encode()
        with pytest.raises(UserError) as exc:
            import_annotations(data, rater="ana")
        assert msg in str(exc.value), (name, str(exc.value))
        with connect() as con:  # nothing half-imported
            assert con.execute("SELECT count(*) FROM human_scores").fetchone()[0] == 0, name
            assert con.execute("SELECT count(*) FROM human_comments").fetchone()[0] == 0, name


def test_mismatched_file_refused_for_expected_run(run):
    text = export_annotations("rb", "notes", "ana")
    good, header = _filled(text)
    with pytest.raises(UserError, match="file is for run 'rb', not 'other'"):
        import_annotations(_csv(good, header).encode(), rater="ana", expect_run="other")


def test_failure_while_storing_rolls_back_everything(run, monkeypatch):
    """Even a failure in the middle of the write (after validation) leaves nothing stored."""
    text = export_annotations("rb", "notes", "ana")
    good, header = _filled(text)
    import core.store.quality as sq
    real = sq.connect
    calls = {"n": 0}

    from contextlib import contextmanager

    @contextmanager
    def flaky_connect(*a, **k):
        with real(*a, **k) as con:
            class Wrapped:
                def __getattr__(self, name):
                    return getattr(con, name)

                def execute(self, sql, params=None):
                    # the scores are written in one batch: the failure comes right after it was written
                    res = con.execute(sql, params)
                    if sql.startswith("INSERT INTO human_scores"):
                        calls["n"] += 1
                        raise RuntimeError("disk full")
                    return res

                def executemany(self, sql, params):
                    return con.executemany(sql, params)
            yield Wrapped()

    monkeypatch.setattr(sq, "connect", flaky_connect)
    with pytest.raises(RuntimeError, match="disk full"):
        import_annotations(_csv(good, header).encode(), rater="ana")
    monkeypatch.setattr(sq, "connect", real)
    assert calls["n"] == 1
    with connect() as con:
        assert con.execute("SELECT count(*) FROM human_scores").fetchone()[0] == 0


def test_import_keeps_the_rater_named_by_the_importer_and_blanks_nothing(run):
    """The rater comes from the page / command, not from the file; a blank cell or comment keeps what is stored."""
    text = export_annotations("rb", "notes", "ana")
    filled, header = _filled(text, "4")
    filled[0]["comment"] = "first pass"
    assert import_annotations(_csv(filled, header).encode(), rater="ana")["rows"] == 24
    # someone else cannot import ana's file as theirs (its blind order is ana's): refused whole
    with pytest.raises(UserError, match="exported for rater 'ana', not 'ben'"):
        import_annotations(_csv(filled, header).encode(), rater="ben")
    assert qstore.human_scores("rb", "notes", "ben") == []
    # a second file with blank cells and a blank comment changes nothing of what is stored
    second, _ = _filled(text, "")
    second[1]["coverage"] = second[1]["faithfulness"] = "2"
    assert import_annotations(_csv(second, header).encode(), rater="ana") == {
        "rows": 1, "skipped": 23, "run_id": "rb", "rubric": "notes", "rater": "ana"}
    again = list(csv.DictReader(io.StringIO(export_annotations("rb", "notes", "ana"))))
    assert again[0]["comment"] == "first pass" and again[0]["coverage"] == "4"
    assert again[1]["coverage"] == "2"
