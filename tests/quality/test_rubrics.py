"""Rubrics (model, JSON import/export, whole-file validation) and automatic checks."""
import json

import pytest

from core.cli import main
from core.config import PROMPTS_DIR, RUBRICS_DIR
from core.quality.checks import list_item_count, run_check, run_checks, word_count
from core.quality.rubrics import RubricError, get_rubric, import_rubric, load_rubric_file, rubric_from_json
from core.store import connect
from core.store import quality as qstore
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "r.duckdb")))
    return tmp_path


def test_shipped_rubrics_are_valid_and_match_their_prompt_sets():
    names = {f.stem for f in RUBRICS_DIR.glob("*.json")}
    assert {"meeting_notes", "workshop"} <= names
    mn = load_rubric_file(RUBRICS_DIR / "meeting_notes.json")
    assert mn.criterion_names == ["coverage", "faithfulness", "concision", "format"]
    prompts = json.loads((PROMPTS_DIR / "meeting_notes.json").read_text())
    assert set(mn.prompts) == {p["id"] for p in prompts}
    exp = json.loads((PROMPTS_DIR / "meeting_notes_expectations.json").read_text())
    for pid, e in exp.items():
        kinds = [c["kind"] for c in mn.prompts[pid].checks]
        assert kinds.count("contains") == len(e["must_include"])
        assert kinds.count("not_contains") == len(e["must_not_include"])
        assert mn.prompts[pid].reference_answer == e["reference_answer"]
        assert mn.prompts[pid].expected_aspects == e["expected_aspects"]
    ws = load_rubric_file(RUBRICS_DIR / "workshop.json")
    n = len(json.loads((PROMPTS_DIR / "workshop.json").read_text()))
    assert sorted(ws.prompts) == [f"p{i:02d}" for i in range(1, n + 1)]
    # every reference answer passes its own prompt's checks (the checks are not absurd)
    from core.quality.checks import run_check as rc
    for r in (mn, ws):
        for pid, e in r.prompts.items():
            if e.reference_answer:
                failed = [c for _, c in r.checks_for(pid) if not rc(c, e.reference_answer)[0]]
                assert not failed, (r.name, pid, failed)


def test_import_export_roundtrip_via_cli(db, tmp_path, capsys):
    src = RUBRICS_DIR / "meeting_notes.json"
    assert main(["rubric", "import", str(src)]) == 0
    assert "imported rubric meeting_notes: 4 criteria, 12 prompts" in capsys.readouterr().out
    out = tmp_path / "out.json"
    assert main(["rubric", "export", "meeting_notes", "--out", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert rubric_from_json(exported).as_json() == load_rubric_file(src).as_json()
    # the export imports again unchanged (idempotent)
    assert main(["rubric", "import", str(out)]) == 0
    assert get_rubric("meeting_notes").as_json() == exported


BAD = [
    ("not json", "{", "not valid JSON (line 1"),
    ("not an object", "[]", "must be a JSON object"),
    ("no criteria", {"name": "x", "criteria": []}, "criteria: must be a non-empty list"),
    ("bad scale", {"name": "x", "criteria": [{"name": "a", "description": "d", "scale": [5, 1]}]},
     "criteria[0].scale: max must be greater than min"),
    ("bad weight", {"name": "x", "criteria": [{"name": "a", "description": "d", "weight": -1}]},
     "criteria[0].weight: must be a positive number"),
    ("duplicate criterion", {"name": "x", "criteria": [{"name": "a", "description": "d"}, {"name": "a", "description": "e"}]},
     "criteria[1].name: duplicate criterion 'a'"),
    ("typo key", {"name": "x", "criteria": [{"name": "a", "description": "d", "wieght": 2}]},
     "criteria[0]: unknown key 'wieght'"),
    ("bad regex", {"name": "x", "criteria": [{"name": "a", "description": "d"}],
                   "prompts": {"p1": {"checks": [{"kind": "regex", "pattern": "(unclosed"}]}}},
     "prompts['p1'].checks[0].pattern: not a valid regular expression"),
    ("unknown check", {"name": "x", "criteria": [{"name": "a", "description": "d"}], "checks": [{"kind": "spell"}]},
     "checks[0].kind: must be one of"),
    ("list min > max", {"name": "x", "criteria": [{"name": "a", "description": "d"}],
                        "checks": [{"kind": "list_items", "min": 4, "max": 2}]}, "checks[0]: min is greater than max"),
    ("bad name", {"name": "no spaces please", "criteria": [{"name": "a", "description": "d"}]}, "name: use letters"),
]


@pytest.mark.parametrize("label, content, reason", BAD, ids=[b[0] for b in BAD])
def test_bad_rubric_files_refused_whole_with_reason(db, tmp_path, capsys, label, content, reason):
    import_rubric(dict(TEST_RUBRIC))
    before = qstore.load_rubric("notes")
    f = tmp_path / "bad.json"
    if isinstance(content, dict) and content.get("name") == "x":
        content = {**content, "name": "notes"}  # would replace the stored rubric if accepted
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    assert main(["rubric", "import", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert reason in err
    assert qstore.load_rubric("notes") == before  # nothing changed
    assert qstore.list_rubric_names() == ["notes"]


def test_export_unknown_and_missing_out(db, capsys):
    assert main(["rubric", "export", "nope", "--out", "x.json"]) == 2
    assert "unknown rubric 'nope'" in capsys.readouterr().err
    assert main(["rubric", "export", "nope"]) == 2


def test_shipped_rubrics_available_on_first_use(db):
    assert get_rubric("workshop").name == "workshop"
    assert "meeting_notes" in qstore.list_rubric_names()


def test_check_functions():
    text = "Decisions\n- Launch moves to May\n\nAction items\n1. Ana: send the plan by Friday\n2) Bo: book room\n**3. Cy:** call"
    assert word_count(text) == 18  # list markers and ** are not words
    assert word_count("Release 4.2 costs 4,500 euros, don't slip: 12:30") == 8
    assert list_item_count(text) == 4
    assert run_check({"kind": "contains", "value": "launch"}, text) == (True, "found")
    assert run_check({"kind": "contains", "value": "launch", "case_sensitive": True}, text)[0] is False
    assert run_check({"kind": "not_contains", "value": "June"}, text) == (True, "absent")
    assert run_check({"kind": "not_contains", "value": "may"}, text) == (False, "found")
    assert run_check({"kind": "regex", "pattern": r"by \w+day"}, text)[0] is True
    assert run_check({"kind": "regex", "pattern": r"^action", "flags": "im"}, text)[0] is True
    assert run_check({"kind": "regex", "pattern": r"^action"}, text)[0] is False
    assert run_check({"kind": "max_words", "value": 18}, text) == (True, "18 words")
    assert run_check({"kind": "max_words", "value": 17}, text) == (False, "18 words")
    assert run_check({"kind": "min_words", "value": 20}, text)[0] is False
    assert run_check({"kind": "list_items", "min": 3, "max": 4}, text) == (True, "4 list items")
    assert run_check({"kind": "list_items", "max": 3}, text)[0] is False
    assert run_check({"kind": "valid_json"}, '{"a": [1, 2]}') == (True, "parses")
    assert run_check({"kind": "valid_json"}, '```json\n{"a": 1}\n```')[0] is True
    assert run_check({"kind": "valid_json"}, "{'a': 1}")[0] is False


def test_checks_stored_per_output(db):
    import_rubric(dict(TEST_RUBRIC))
    ids = make_run("rc", {"p1": "t1", "p2": "t2"}, {("m1", "p1"): "Launch in May.", ("m1", "p2"): "word " * 60,
                                                     ("m2", "p1"): "Launch in June."})
    results = run_checks("rc", "notes")
    stored = {(r["request_id"], r["check_key"]): (r["passed"], r["detail"]) for r in qstore.check_results("rc", "notes")}
    assert stored == {
        (ids[("m1", "p1")], "*#0"): (True, "3 words"),
        (ids[("m1", "p1")], "p1#0"): (True, "found"),
        (ids[("m1", "p2")], "*#0"): (False, "60 words"),
        (ids[("m2", "p1")], "*#0"): (True, "3 words"),
        (ids[("m2", "p1")], "p1#0"): (False, "not found"),
    }
    assert len(results) == 5
    run_checks("rc", "notes")  # re-running replaces, never duplicates
    with connect() as con:
        assert con.execute("SELECT count(*) FROM check_results").fetchone()[0] == 5


def test_page_editor_document_validates_like_a_file(db):
    import numpy as np

    from core.quality.views import rubric_criteria_rows, rubric_from_edit

    rub = import_rubric(dict(TEST_RUBRIC))
    doc = rub.as_json()
    rows = rubric_criteria_rows(rub)
    rows[0]["weight"] = np.float64(3.0)
    rows[0]["scale_max"] = np.int64(7)
    rows.append({"name": None, "description": None, "scale_min": float("nan"), "scale_max": None, "weight": None})
    rest = json.dumps({"checks": doc["checks"], "prompts": doc["prompts"]})
    new = rubric_from_edit(doc, "notes", "edited", rows, rest)
    import_rubric(new)
    got = get_rubric("notes")
    assert got.description == "edited"
    assert (got.criteria[0].weight, got.criteria[0].scale_max) == (3.0, 7)
    assert len(got.criteria) == 2 and got.prompts["p1"].checks == [{"kind": "contains", "value": "May"}]
    rows[1]["scale_min"] = np.int64(9)
    with pytest.raises(RubricError, match=r"criteria\[1\].scale: max must be greater than min"):
        import_rubric(rubric_from_edit(doc, "notes", "x", rows, rest))
    with pytest.raises(RubricError, match="not valid JSON"):
        rubric_from_edit(doc, "notes", "x", rows, "{")
    assert get_rubric("notes").description == "edited"  # the refused edit changed nothing
