"""Regex checks run in linear time (issue 18): RE2, with patterns it does not support refused when the rubric is
imported, in one line naming the place. ``^(a+)+$`` on 26 a's and a '!' took 5.3 s in Python's re."""
from __future__ import annotations

import json
import time

import pytest

from core.cli import main
from core.quality.checks import run_check
from core.quality.rubrics import compile_check_regex, import_rubric
from core.store import quality as qstore
from tests.support.quality_run import TEST_RUBRIC
from tests.support.store import migrated


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "q.duckdb")))
    return tmp_path


def test_catastrophic_backtracking_pattern_is_linear():
    import re2
    assert isinstance(compile_check_regex(r"^(a+)+$"), type(re2.compile("x")))
    t = time.perf_counter()
    assert run_check({"kind": "regex", "pattern": r"^(a+)+$"}, "a" * 26 + "!") == (False, "no match")
    assert run_check({"kind": "regex", "pattern": r"^(a+)+$"}, "a" * 100_000)[0] is True
    assert time.perf_counter() - t < 1.0      # generous: microseconds with RE2, 5.3 s (26 a's) with re


def test_flags_keep_their_meaning():
    text = "Decisions:\nAction: Bob by Friday.\nnext line"
    assert run_check({"kind": "regex", "pattern": r"^action", "flags": "im"}, text)[0] is True
    assert run_check({"kind": "regex", "pattern": r"^action"}, text)[0] is False
    assert run_check({"kind": "regex", "pattern": r"friday.\nnext", "flags": "is"}, text)[0] is True
    assert run_check({"kind": "regex", "pattern": r"by \w+day"}, text) == (True, "matched 'by Friday'")


@pytest.mark.parametrize("pattern, shown", [(r"(a)\1", r"\1"), (r"a(?=b)", "(?="), (r"(?<!x)y", "(?<"),
                                             ("a" * 2000, "2000 characters")])
def test_unsupported_patterns_are_refused_at_import_and_nothing_is_stored(db, tmp_path, capsys, pattern, shown):
    rubric = {**TEST_RUBRIC, "checks": [{"kind": "regex", "pattern": pattern}]}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(rubric))
    capsys.readouterr()
    assert main(["rubric", "import", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "checks[0].pattern" in err and shown in err, err
    assert qstore.load_rubric("notes") is None


def test_a_stored_pattern_re2_refuses_fails_its_check_not_the_run(db):
    # a rubric stored before RE2 (written straight into the store) may hold a backreference
    import_rubric(TEST_RUBRIC)
    assert run_check({"kind": "regex", "pattern": r"(a)\1"}, "aa") [0] is False
    assert "pattern refused" in run_check({"kind": "regex", "pattern": r"(a)\1"}, "aa")[1]
