"""Redaction at the error boundary (issue 18): the one error line every page and the CLI show masks credentials
in URI form and password=, whatever raised it; the annotation import honours SLM_MAX_FILE_MB."""
from __future__ import annotations

import pytest

from core.cli import main
from core.errors import UserError, one_line
from tests.support.store import migrated


@pytest.mark.parametrize("text, secret", [
    ("cannot attach postgresql://alice:pw@db.example/slm: refused", "pw"),
    ("connection to dbname=slm host=h user=alice password=pw failed", "pw"),
    ("password = 'two words' rejected", "two words"),
    ("GET https://bob:hunter2@api.example/v1?api-key=abc123 failed", "hunter2"),
    ("HTTP 401: Authorization: Bearer sk-proj-Abc123Def456Ghi789Jkl012", "sk-proj-Abc123Def456Ghi789Jkl012"),
])
def test_one_line_masks_credentials(text, secret):
    for shown in (UserError(text).one_line(), one_line(text), one_line(RuntimeError(text + "\nsecond line"))):
        assert secret not in shown and "***" in shown and "\n" not in shown


def test_a_store_url_with_a_password_never_reaches_the_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLM_DB_LOCK_TIMEOUT", "1")
    url = "ducklake:postgres:postgresql://alice:pw-secret-123@127.0.0.1:1/slm"
    code = main(["store", "info", "--db", url])
    err = capsys.readouterr().err
    assert code == 2 and "pw-secret-123" not in err and len(err.strip().splitlines()) == 1, err


def test_annotation_file_over_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from core.quality import blind
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "a.duckdb")))
    monkeypatch.setenv("SLM_MAX_FILE_MB", "1")
    big = tmp_path / "big.csv"
    big.write_bytes(b"run_id,request_id\n" + b"x," * (600 * 1024))
    with pytest.raises(UserError, match="SLM_MAX_FILE_MB"):
        blind.import_annotations(big, rater="ann")
    with pytest.raises(UserError, match="SLM_MAX_FILE_MB"):
        blind.import_annotations(big.read_bytes(), rater="ann")
