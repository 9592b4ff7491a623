"""The one model list: endpoints (real HTTP servers on 127.0.0.1), keys never stored, CLI contract."""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from core.catalog import endpoints
from core.errors import UserError
from core.catalog.models import MODEL_FIELDS, list_models, resolve_model
from tests.support.cli import run_cli


class ModelsHandler(BaseHTTPRequestHandler):
    seen_auth: list = []

    def do_GET(self):  # noqa: N802
        ModelsHandler.seen_auth.append(self.headers.get("Authorization"))
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps({"object": "list", "data": [
            {"id": "qwen2.5-0.5b", "object": "model", "owned_by": "test-org"},
            {"id": "phi-4-mini", "object": "model", "owned_by": "test-org"},
        ]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), ModelsHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "models.duckdb"
    monkeypatch.setenv("SLM_DB", str(path))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    return path


def test_endpoint_models_listed_and_unreachable_marked(db, server, monkeypatch):
    monkeypatch.setenv("TEST_SECRET_KEY", "sk-very-secret-123")
    endpoints.add("local-vllm", server, "TEST_SECRET_KEY")
    endpoints.add("gone", f"http://127.0.0.1:{closed_port()}/v1")
    result = list_models(include_catalog=False, timeout=2)
    by_ep = {e["name"]: e for e in result.endpoints}
    assert by_ep["local-vllm"]["status"] == "ok" and by_ep["local-vllm"]["n_models"] == 2
    assert by_ep["gone"]["status"] == "unreachable" and "unreachable" in by_ep["gone"]["message"]
    ep_rows = [m for m in result.models if m["source"] == "endpoint:local-vllm"]
    assert {m["id"] for m in ep_rows} == {"qwen2.5-0.5b", "phi-4-mini"}
    for m in result.models:
        assert set(MODEL_FIELDS) <= set(m)
    assert ep_rows[0]["backend"] == "openai" and ep_rows[0]["endpoint"] == server + "/v1"
    assert "Bearer sk-very-secret-123" in ModelsHandler.seen_auth  # the key was read from the env at call time
    assert resolve_model("phi-4-mini", result.models)["endpoint_name"] == "local-vllm"
    with pytest.raises(UserError, match="unknown model 'nope'"):
        resolve_model("nope", result.models)
    # the key itself is never written to the database
    con = duckdb.connect(str(db), read_only=True)
    try:
        dump = str(con.execute("SELECT * FROM endpoints").fetchall())
    finally:
        con.close()
    assert "TEST_SECRET_KEY" in dump and "sk-very-secret-123" not in dump


def test_bad_endpoint_input_is_a_clear_error(db):
    with pytest.raises(UserError, match="not an http"):
        endpoints.add("x", "ftp://example")
    with pytest.raises(UserError, match="environment variable name"):
        endpoints.add("x", "http://127.0.0.1:1/v1", "sk-abc def")
    with pytest.raises(UserError, match="no endpoint named"):
        endpoints.remove("never-added")


def test_cli_endpoint_and_models_json(db, server, tmp_path, capsys):
    code, _, err = run_cli(capsys, "endpoint", "add", "srv", server)
    assert code == 0, err
    out = tmp_path / "models.json"
    code, _, err = run_cli(capsys, "models", "--no-catalog", "--json", str(out))
    assert code == 0, err
    data = json.loads(out.read_text())
    assert {m["id"] for m in data["models"] if m["source"] == "endpoint:srv"} == {"qwen2.5-0.5b", "phi-4-mini"}
    code, _, err = run_cli(capsys, "endpoint", "add", "bad", "not a url")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_cli_db_option_names_the_file(db, tmp_path, server, capsys):
    other = tmp_path / "other.duckdb"
    code, _, err = run_cli(capsys, "endpoint", "add", "elsewhere", server, "--db", str(other))
    assert code == 0, err
    con = duckdb.connect(str(other), read_only=True)
    try:
        assert con.execute("SELECT name FROM endpoints").fetchall() == [("elsewhere",)]
    finally:
        con.close()
