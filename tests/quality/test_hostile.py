"""Hostile outputs in quality: the valid_json check at any depth or number size, the annotation file raters open
in a spreadsheet (no live formula), the judge's endpoint and key name checked before any call."""
import csv
import io

import pytest
from hypothesis import given, settings, strategies as st

from core.errors import UserError
from core.quality.blind import export_annotations
from core.quality.checks import run_check
from core.quality.judge import resolve_judge
from core.quality.rubrics import import_rubric
from tests.support.quality_run import TEST_RUBRIC, make_run
from tests.support.store import migrated


@pytest.mark.parametrize("text,ok,detail", [
    ("[" * 5000 + "]" * 5000, False, "nested deeper than 256 levels"),
    ('{"a": ' * 1000 + "1" + "}" * 1000, False, "nested deeper than 256 levels"),
    ("[" * 200 + "]" * 200, True, "parses"),
    ('{"score": NaN}', False, "NaN"), ('[Infinity]', False, "Infinity"), ("[1e400]", False, "too large"),
])
def test_valid_json_check_on_hostile_outputs(text, ok, detail):
    passed, why = run_check({"kind": "valid_json"}, text)
    assert passed is ok and detail in why


@settings(deadline=None)
@given(st.text(alphabet='[]{}":,0123456789.eE+-NaInfity ntrulfase\\', max_size=400))
def test_valid_json_check_never_raises(text):
    passed, why = run_check({"kind": "valid_json"}, text)
    assert isinstance(passed, bool) and isinstance(why, str)


def test_annotation_file_has_no_live_formula(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "a.duckdb")))
    import_rubric(dict(TEST_RUBRIC))
    outputs = {("=1+2-model", "p1"): '=HYPERLINK("http://evil.example/x","click")',
               ("plain", "p1"): "- item one\n- item two", ("third", "p1"): "  @SUM(A1:A9)"}
    make_run("rh", {"p1": "+ a prompt that starts with plus"}, outputs)
    text = export_annotations("rh", "notes", "ana")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3
    for row in rows:
        for cell in row.values():
            assert not (cell[:1] in ("\t", "\r") or cell.lstrip()[:1] in ("=", "+", "-", "@")), cell
    assert {r["output"] for r in rows} == {"'" + v for v in outputs.values()}
    assert {r["prompt"] for r in rows} == {"'+ a prompt that starts with plus"}


def test_judge_endpoint_refuses_credentials_and_keys_as_names():
    with pytest.raises(UserError, match="holds credentials") as err:
        resolve_judge("j", endpoint="http://bob:hunter2@127.0.0.1:9/v1")
    assert "hunter2" not in str(err.value)
    with pytest.raises(UserError, match="this looks like a key") as err:
        resolve_judge("j", endpoint="http://127.0.0.1:9/v1", api_key_env="sk-proj-Abc123Def456Ghi789Jkl012")
    assert "Abc123" not in str(err.value)
    assert resolve_judge("j", endpoint="http://127.0.0.1:9/v1", api_key_env="JUDGE_KEY").api_key_env == "JUDGE_KEY"
