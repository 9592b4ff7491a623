"""Endpoints from outside reach nothing else (issue 18): the key's variable name checked on every use, no redirect
to another origin followed (the key never travels there; https never falls to http), one deadline per call. Real
HTTP servers on 127.0.0.1; the 'other origin' is a second server on another port that must see nothing."""
from __future__ import annotations

import time

import pytest

from core.catalog import endpoints
from core.errors import UserError
from core.store import connect
from tests.support.hostile_server import RecordingServer
from tests.support.store import migrated

SECRET = "s3cret-value-for-the-attacker"


def test_a_stored_variable_name_is_checked_before_anything_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "s.duckdb")))
    monkeypatch.setenv("POC_SECRET", SECRET)
    with RecordingServer() as evil:
        with connect() as con:   # as an old file or a bundle could have stored it: never through `endpoint add`
            con.execute("INSERT INTO endpoints (name, base_url, api_key_env) VALUES "
                        "('bad-name', ?, 'POC_SECRET; rm -rf'), ('key-as-name', ?, 'sk-proj-Abc123Def456Ghi789Jkl012')",
                        [evil.base_url, evil.base_url])
        probed = {p["name"]: p for p in endpoints.probe_all(timeout=1)}
        assert probed["bad-name"]["status"] == "unreachable" and "environment variable name" in probed["bad-name"]["message"]
        assert probed["key-as-name"]["status"] == "unreachable" and "looks like a key" in probed["key-as-name"]["message"]
        assert "sk-proj" not in probed["key-as-name"]["message"]
        assert evil.requests == []


def test_a_key_with_a_newline_never_becomes_a_header(monkeypatch):
    monkeypatch.setenv("POC_SECRET", "abc\r\nX-Injected: 1")
    with RecordingServer() as srv:
        with pytest.raises(UserError, match="usable API key"):
            endpoints.fetch_models(srv.base_url, "POC_SECRET", timeout=1)
        assert srv.requests == []


def test_a_redirect_to_another_origin_is_not_followed_and_the_key_never_goes_there(monkeypatch):
    monkeypatch.setenv("POC_SECRET", SECRET)
    with RecordingServer() as other, RecordingServer(redirect_to=other.base_url + "/models") as first:
        with pytest.raises(UserError, match="another origin") as err:
            endpoints.fetch_models(first.base_url, "POC_SECRET", timeout=2)
        assert SECRET not in err.value.one_line()
        assert first.requests and first.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
        assert other.requests == []          # nothing at all reached the other origin, least of all the key
        # the benchmark's engine checks the endpoint the same way before its first request
        from core.engines.http import HttpEngine
        with pytest.raises(UserError, match="another origin"):
            HttpEngine("m", first.base_url, api_key_env="POC_SECRET").open()
        assert other.requests == []


def test_https_to_http_is_another_origin():
    assert endpoints.origin("https://h/v1") != endpoints.origin("http://h/v1")
    assert endpoints.origin("https://h/v1") == endpoints.origin("https://H:443/x")
    assert endpoints.origin("http://h:8000/v1") != endpoints.origin("http://h:8001/v1")


def test_a_same_origin_redirect_is_followed_with_the_key(monkeypatch):
    monkeypatch.setenv("POC_SECRET", SECRET)
    with RecordingServer(models=("a", "b")) as srv:
        srv.redirect_to = srv.base_url.replace("/v1", "/real/v1") + "/models"
        assert [m["id"] for m in endpoints.fetch_models(srv.base_url, "POC_SECRET", timeout=2)] == ["a", "b"]
        assert [r["path"] for r in srv.requests] == ["/v1/models", "/real/v1/models"]
        assert srv.requests[1]["headers"]["authorization"] == f"Bearer {SECRET}"


def test_one_deadline_for_the_whole_call_however_the_server_drips():
    with RecordingServer(drip_s=0.5) as slow:
        t = time.perf_counter()
        with pytest.raises(UserError, match="within 1 s"):
            endpoints.fetch_models(slow.base_url, timeout=1)
        took = time.perf_counter() - t
    assert took < 3, took          # was 5.5 s: each 0.5 s byte restarted the per-read timeout
