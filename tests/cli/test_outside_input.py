"""A plan, a bundle or an endpoint from outside reaches nothing else: the eight findings of the third hardening
pass, each attacked as an outsider would, through the real CLI. Real DuckDB files, real HTTP servers on
127.0.0.1 that record what reaches them, real run bundles."""
from __future__ import annotations

import csv
import hashlib
import json
import threading
import zipfile
from http.server import ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from core.bench.campaign import PLAN_FORMAT
from core.bench.run.inputs import parse_prompts
from core.cli import main
from core.store import campaigns as store
from core.store import connect
from tests.store.test_bundle_hostile import altered, parquet, refused, rewrite, stores  # noqa: F401  (fixtures)
from tests.support.hostile_server import RecordingServer
from tests.support.hostile_server import _Handler as HostileHandler
from tests.support.openai_server import OpenAITestServer

PROMPTS = ["Say hi", "Name three colours"]
SECRET = "pg-secret-4417"           # what PGPASSWORD holds: no key shape at all
KEY = "sk-proj-Abc123Def456Ghi789Jkl012"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT", "SLM_DATA_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLM_DB", str(tmp_path / "device.duckdb"))
    monkeypatch.setenv("SLM_CACHE", str(tmp_path / "device-cache"))
    monkeypatch.setenv("SLM_DEVICE", "dev-a")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    return {"tmp": tmp_path, "prompts": prompts, "db": tmp_path / "device.duckdb"}


def write_plan(path: Path, url: str | None, *, api_key_env=None, settings=None, devices="any", model="m") -> Path:
    """A plan file as anyone can write one (the hash of its prompts made consistent)."""
    ps = parse_prompts(PROMPTS, name="p")
    plan = {"models": [{"model": model, "engine": "openai" if url else "local", "endpoint": url,
                        "api_key_env": api_key_env, "size_mb": None}],
            "settings": {"rounds": 1, "warmup": 0, "max_tokens": 8, "concurrency": [1], "lengths": None,
                         "order": None, **(settings or {})},
            "prompt_set_hash": ps.hash, "devices": devices}
    path.write_text(json.dumps({"format": PLAN_FORMAT, "name": "x", "version": 1, "prompt_set": "p",
                                "prompts": ps.prompts, "plan": plan}))
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def stored_text(db: Path) -> str:
    """Every value of every table of a DuckDB file, as text."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()]
        return "\n".join(repr(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    finally:
        con.close()


# ---------------------------------------------------------------- 1. a plan never chooses where a key goes

def test_a_plan_sends_no_key_and_no_request_until_the_device_accepts_its_endpoint(env, capsys, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", SECRET)
    monkeypatch.setenv("LAB_KEY", "lab-key-9981")
    with RecordingServer(models=("m",)) as listener:
        plan = write_plan(env["tmp"] / "plan.json", listener.base_url, api_key_env="PGPASSWORD")
        assert main(["campaign", "create", "poc", "--from", str(plan)]) == 0
        err = capsys.readouterr().err
        assert listener.base_url in err and "--accept-endpoints" in err        # shown at import
        assert main(["campaign", "run", "poc"]) == 2
        line = one_error_line(capsys)
        assert listener.base_url in line and "--accept-endpoints" in line and "nothing was sent" in line
        assert listener.requests == []                                           # no request, no key
        assert main(["campaign", "run", "poc", "--accept-endpoints"]) == 0
        assert listener.requests                                                  # now it is asked...
        for r in listener.requests:                                               # ... and never with a key
            assert "authorization" not in r["headers"] and "api-key" not in r["headers"], r
            assert SECRET not in json.dumps(r)
        # a key goes only to an endpoint registered on this machine with its variable
        assert main(["endpoint", "add", "lab", listener.base_url, "--api-key-env", "LAB_KEY"]) == 0
        seen = len(listener.requests)
        plan2 = write_plan(env["tmp"] / "plan2.json", listener.base_url, api_key_env="PGPASSWORD",
                           settings={"max_tokens": 9})
        assert main(["campaign", "create", "poc2", "--from", str(plan2)]) == 0
        assert main(["campaign", "run", "poc2"]) == 0
        later = listener.requests[seen:]
        assert later and all(r["headers"].get("authorization") == "Bearer lab-key-9981" for r in later)
        assert all(SECRET not in json.dumps(r) for r in listener.requests)
    # the key never in the store or an export
    out = env["tmp"] / "exported.json"
    assert main(["campaign", "export", "poc", "--out", str(out)]) == 0
    assert SECRET not in out.read_text() and SECRET not in stored_text(env["db"])


def test_a_campaign_written_straight_into_a_shared_store_is_held_back_too(env, capsys, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", SECRET)
    with RecordingServer(models=("m",)) as listener:
        ps = parse_prompts(PROMPTS, name="p")
        plan = {"models": [{"model": "m", "engine": "openai", "endpoint": listener.base_url,
                            "api_key_env": "PGPASSWORD", "size_mb": None}],
                "settings": {"rounds": 1, "warmup": 0, "max_tokens": 8, "concurrency": [1], "lengths": None,
                             "order": None}, "prompt_set_hash": ps.hash, "devices": "any"}
        store.create_campaign("shared", plan, ps.prompts, "p")                  # another member's write
        assert main(["campaign", "run", "shared"]) == 2
        assert listener.base_url in one_error_line(capsys) and listener.requests == []


# ---------------------------------------------------------------- 2. credentials never enter a plan

def test_keys_and_url_credentials_are_refused_before_a_plan_is_stored(env, capsys):
    base = ["campaign", "create", "c", "--models", "m", "--prompts", str(env["prompts"])]
    assert main(base + ["--endpoint", "http://127.0.0.1:9/v1", "--api-key-env", KEY]) == 2
    line = one_error_line(capsys)
    assert "looks like a key" in line and KEY not in line
    for url, secret in (("http://user:hunter2pass@127.0.0.1:9/v1", "hunter2pass"),
                        ("http://127.0.0.1:9/v1?api-key=abc123secret", "abc123secret")):
        assert main(base + ["--endpoint", url]) == 2
        line = one_error_line(capsys)
        assert "credential" in line and secret not in line
        plan = write_plan(env["tmp"] / "p.json", url)
        assert main(["campaign", "create", "c", "--from", str(plan)]) == 2
        line = one_error_line(capsys)
        assert "p.json" in line and "credential" in line and secret not in line
    plan = write_plan(env["tmp"] / "k.json", "http://127.0.0.1:9/v1", api_key_env=KEY)
    assert main(["campaign", "create", "c", "--from", str(plan)]) == 2
    line = one_error_line(capsys)
    assert "api_key_env" in line and "looks like a key" in line and KEY not in line
    assert store.list_campaigns() == []
    text = stored_text(env["db"])
    assert KEY not in text and "hunter2pass" not in text and "abc123secret" not in text


# ---------------------------------------------------------------- 3. plan settings within bench's bounds

@pytest.mark.parametrize("settings, word", [
    ({"rounds": 10 ** 12}, "rounds"), ({"concurrency": [10 ** 9]}, "concurrency"),
    ({"lengths": [10 ** 30]}, "lengths"), ({"max_tokens": 10 ** 12}, "max_tokens"),
    ({"warmup": 10 ** 9}, "warmup"), ({"concurrency": list(range(1, 40))}, "concurrency")])
def test_absurd_plan_settings_are_refused_in_one_line_at_import(env, capsys, settings, word):
    plan = write_plan(env["tmp"] / "big.json", "http://127.0.0.1:9/v1", settings=settings)
    assert main(["campaign", "create", "big", "--from", str(plan)]) == 2
    line = one_error_line(capsys)
    assert "big.json" in line and word in line
    assert store.list_campaigns() == []


def test_absurd_settings_are_refused_on_create_and_on_run(env, capsys):
    args = ["campaign", "create", "c", "--models", "m", "--prompts", str(env["prompts"]), "--endpoint",
            "http://127.0.0.1:9/v1"]
    for extra, word in ((["--rounds", str(10 ** 12)], "rounds"), (["--concurrency", str(10 ** 9)], "concurrency"),
                        (["--lengths", str(10 ** 30)], "lengths")):
        assert main(args + extra) == 2
        assert word in one_error_line(capsys)
    assert store.list_campaigns() == []
    many = env["tmp"] / "many.json"
    many.write_text(json.dumps([f"prompt {i}" for i in range(101)]))
    with RecordingServer(models=("m",)) as listener:      # bench: 1,000 rounds x 101 prompts, refused before asking
        assert main(["bench", "--prompts", str(many), "--endpoint", listener.base_url, "--model", "m",
                     "--rounds", "1000"]) == 2
        assert "101,000 requests" in one_error_line(capsys) and listener.requests == []
        assert main(["campaign", "create", "c", "--models", "m", "--prompts", str(many), "--endpoint",
                     listener.base_url, "--rounds", "1000"]) == 2
        assert "101,000 requests" in one_error_line(capsys) and listener.requests == []
    with RecordingServer(models=("m",)) as listener:      # a stored plan from elsewhere: refused at run
        ps = parse_prompts(PROMPTS, name="p")
        plan = {"models": [{"model": "m", "engine": "openai", "endpoint": listener.base_url, "api_key_env": None,
                            "size_mb": None}],
                "settings": {"rounds": 10 ** 12, "warmup": 0, "max_tokens": 8, "concurrency": [1]},
                "prompt_set_hash": ps.hash, "devices": "any"}
        store.create_campaign("huge", plan, ps.prompts, "p")
        from core.catalog.accepted import accept
        accept(listener.base_url)
        assert main(["campaign", "run", "huge"]) == 2
        assert "rounds" in one_error_line(capsys) and listener.requests == []


# ---------------------------------------------------------------- 4. figures from outside are range-checked

def test_a_window_beyond_32_bits_is_unknown_and_the_sweep_completes(env, capsys):
    from core.store.lengths import length_figures
    name = "huge;window=1000000000000;ttft=0.001;pt=0.00001;tok=0.001;n=4"
    out = env["tmp"] / "sweep.json"
    with OpenAITestServer(models=[name]) as server:
        rc = main(["bench", "--lengths", "300,600", "--endpoint", server.base_url, "--model", name, "--rounds", "1",
                   "--warmup", "0", "--max-tokens", "4", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    (sw,) = data["lengths"]
    assert sw["context_window"] is None and "1000000000000" in sw["context_window_source"]
    assert sw["time_to_notes_ms"] > 0
    (fig,) = length_figures(data["run_id"])
    assert fig["context_window"] is None
    from core.store import bench as db
    assert {r["run_id"]: r["status"] for r in db.list_runs()}[data["run_id"]] == "completed"


def test_windows_and_targets_out_of_range(env, capsys):
    from core.bench.sweep.tokens import checked_window
    assert checked_window(4294967295, "gguf")[0] is None and "out of range" in checked_window(4294967295, "gguf")[1]
    assert checked_window(32768, "gguf") == (32768, "gguf") and checked_window(None, "gguf") == (None, "none")
    assert checked_window(-5, "endpoint")[0] is None
    from core.store.lengths import run_sweeps, save_sweep       # the store's own guard, whatever the caller
    save_sweep({"run_id": "r", "model": "m", "backend": "llamacpp", "context_window": 4294967295,
                "context_setting": 10 ** 12, "kv_bytes_per_token": 2 ** 70, "target_prompt_tokens": 6000})
    (row,) = run_sweeps("r")
    assert (row["context_window"], row["context_setting"], row["kv_bytes_per_token"]) == (None, None, None)
    assert row["target_prompt_tokens"] == 6000
    assert main(["bench", "--lengths", "300", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
                 "--target-prompt", str(10 ** 12)]) == 2
    assert "target" in one_error_line(capsys)


# ---------------------------------------------------------------- 5. a bundle never replaces a device's campaign run

def test_a_bundle_cannot_make_another_run_a_devices_campaign_run(env, capsys, monkeypatch):
    team, offline = env["tmp"] / "team.duckdb", env["tmp"] / "offline.duckdb"
    with OpenAITestServer(models=["tiny"], ttft=0.001, tok=0.0005, n=4) as server:
        assert main(["campaign", "create", "c", "--models", "tiny", "--prompts", str(env["prompts"]), "--endpoint",
                     server.base_url, "--rounds", "1", "--max-tokens", "8", "--devices", "dev-a,air",
                     "--db", str(team)]) == 0
        plan = env["tmp"] / "plan.json"
        assert main(["campaign", "export", "c", "--out", str(plan), "--db", str(team)]) == 0
        assert main(["campaign", "create", "c", "--from", str(plan), "--db", str(offline)]) == 0
        sha = store.get_campaign("c")["plan_sha256"]
        # on the offline store: a plain run with other prompts and other max tokens, linked to the campaign by hand
        other = env["tmp"] / "other.json"
        other.write_text(json.dumps(["Something else entirely", "And more", "And a third"]))
        monkeypatch.setenv("SLM_DEVICE", "air")
        assert main(["bench", "--prompts", str(other), "--endpoint", server.base_url, "--model", "tiny",
                     "--rounds", "1", "--warmup", "0", "--max-tokens", "4", "--json", str(env["tmp"] / "o.json"),
                     "--db", str(offline)]) == 0
        foreign = json.loads((env["tmp"] / "o.json").read_text())["run_id"]
        with connect() as con:
            con.execute("INSERT INTO campaign_runs VALUES (?, 'c', 1, ?, 'air', '[]', now()::TIMESTAMP)",
                        [foreign, sha])
        bundle = env["tmp"] / "foreign.zip"
        assert main(["export-run", foreign, "--out", str(bundle), "--db", str(offline)]) == 0
        # dev-a runs the campaign on the team store; then a second, legitimate dev-a run comes in a bundle
        monkeypatch.setenv("SLM_DEVICE", "dev-a")
        assert main(["campaign", "run", "c", "--db", str(team), "--json", str(env["tmp"] / "a.json")]) == 0
        own = json.loads((env["tmp"] / "a.json").read_text())["run_id"]
        assert main(["campaign", "run", "c", "--db", str(offline), "--json", str(env["tmp"] / "b.json")]) == 0
        second = json.loads((env["tmp"] / "b.json").read_text())["run_id"]
        bundle2 = env["tmp"] / "second.zip"
        assert main(["export-run", second, "--out", str(bundle2), "--db", str(offline)]) == 0
    capsys.readouterr()
    assert main(["import-run", str(bundle), "--db", str(team)]) == 0       # the run comes in, as a run
    assert main(["import-run", str(bundle2), "--db", str(team)]) == 0
    assert "not taken" in capsys.readouterr().err and own
    by = {d["device"]: d for d in store.campaign_status("c")["devices"]}
    assert by["air"]["state"] == "not started" and by["air"]["requests"] == 0        # not "done 3/2"
    assert by["dev-a"]["run_id"] == own and by["dev-a"]["requests"] == by["dev-a"]["planned"] == len(PROMPTS)
    assert store.campaign_decision_inputs("c") == ({"dev-a": [own]}, ["air"])
    from core.store import bench as db
    assert {foreign, second} <= {r["run_id"] for r in db.list_runs()}


# ---------------------------------------------------------------- 6. a bundled rubric passes `rubric import`'s checks

def _rubric_doc(bundle: Path, tmp_path: Path) -> dict:
    with zipfile.ZipFile(bundle) as z:
        (tmp_path / "rv.parquet").write_bytes(z.read("rubric_versions.parquet"))
    con = duckdb.connect()
    (doc,) = con.execute(f"SELECT doc FROM read_parquet('{tmp_path / 'rv.parquet'}') LIMIT 1").fetchone()
    con.close()
    return json.loads(doc)


@pytest.mark.parametrize("change, word", [
    (lambda d: d["criteria"][0].update(scale=[9, -3]), "scale"),
    (lambda d: d["criteria"][0].update(weight=-1e9), "weight"),
    (lambda d: d.setdefault("checks", []).append({"kind": "exec", "value": "rm -rf /"}), "exec")])
def test_a_bundled_rubric_version_is_validated_like_rubric_import(stores, tmp_path, capsys, change, word):  # noqa: F811
    bundle, dst = stores
    doc = _rubric_doc(bundle, tmp_path)
    change(doc)
    body = {k: v for k, v in doc.items() if k != "format"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    text = json.dumps(doc).replace("'", "''")
    data, _, _ = altered(bundle, tmp_path, "rubric_versions", f"'{text}'::JSON AS doc, '{digest}' AS content_hash")
    err = refused(rewrite(bundle, tmp_path / "r.zip", files={"rubric_versions.parquet": data}), dst, capsys,
                  "rubric notes version")
    assert word in err


def test_a_bundles_own_current_form_rows_are_never_taken(stores, tmp_path, capsys):  # noqa: F811
    bundle, dst = stores
    data, _, _ = altered(bundle, tmp_path, "rubric_criteria", "9 AS scale_min, -3 AS scale_max, -1e9 AS weight")
    assert main(["import-run", str(rewrite(bundle, tmp_path / "r.zip", files={"rubric_criteria.parquet": data})),
                 "--db", str(dst)]) == 0
    from core.quality.rubrics import rubric_from_json
    from core.store import quality as qstore
    stored = qstore.load_rubric("notes")
    assert all(c["scale"][0] < c["scale"][1] and c["weight"] > 0 for c in stored["criteria"])
    rubric_from_json({k: v for k, v in stored.items() if k != "_version"})       # what `rubric export` writes
    assert main(["rubric", "export", "notes", "--out", str(tmp_path / "notes.json"), "--db", str(dst)]) == 0


# ---------------------------------------------------------------- 7. redaction by value

class _EchoKey(HostileHandler):
    """An endpoint that echoes the key it was sent in its 401 body (as OpenAI's "Incorrect API key provided")."""

    def do_GET(self):
        self._json(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        self._json(401, {"error": {"message": f"Incorrect API key provided: {key}. You can find your key at ..."}})


def test_a_key_echoed_by_the_endpoint_is_masked_by_value_everywhere(env, capsys, monkeypatch):
    plain = "secret123"                       # no key shape: only its value can find it
    monkeypatch.setenv("ECHO_KEY", plain)
    monkeypatch.setenv("BENCH_STREAM", "0")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        assert main(["bench", "--prompts", str(env["prompts"]), "--endpoint", url, "--model", "m", "--api-key-env",
                     "ECHO_KEY", "--rounds", "1", "--warmup", "0", "--json", str(env["tmp"] / "run.json")]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    run_id = json.loads((env["tmp"] / "run.json").read_text())["run_id"]
    out = env["tmp"] / "report"
    assert main(["bench-report", "--out", str(out)]) == 0
    bundle = env["tmp"] / "run.zip"
    assert main(["export-run", run_id, "--out", str(bundle)]) == 0
    terminal = "".join(capsys.readouterr())
    with connect() as con:
        errors = [r[0] for r in con.execute("SELECT error FROM requests WHERE error IS NOT NULL").fetchall()]
    assert errors and all("Incorrect API key provided: ***" in e for e in errors)       # the error kept, masked
    texts = {"store": stored_text(env["db"]), "terminal": terminal, "json": (env["tmp"] / "run.json").read_text()}
    texts.update({p.name: p.read_text(encoding="utf-8") for p in out.iterdir() if p.suffix in (".csv", ".md", ".json")})
    with zipfile.ZipFile(bundle) as z:                # the bundle's tables, imported into a fresh store and read
        z.extractall(env["tmp"] / "bundle")
    con = duckdb.connect()
    for f in (env["tmp"] / "bundle").glob("*.parquet"):
        texts[f.name] = repr(con.execute(f"SELECT * FROM read_parquet('{f}')").fetchall())
    con.close()
    assert [name for name, text in texts.items() if plain in text] == []


# ---------------------------------------------------------------- 8. one rule for device labels; CSV escapes

def test_a_device_label_follows_one_rule_everywhere(env, capsys, monkeypatch):
    from core.config import DeviceLabelError, set_device_label
    with pytest.raises(DeviceLabelError, match="comma"):
        set_device_label("lab,pc")
    with pytest.raises(ValueError):                    # the sidebar catches it as before
        set_device_label("lab\x1b[31m")
    with OpenAITestServer(models=["tiny"], n=4) as server:
        base = ["campaign", "create", "c", "--models", "tiny", "--prompts", str(env["prompts"]), "--endpoint",
                server.base_url, "--rounds", "1", "--max-tokens", "8"]
        assert main(base + ["--devices", "lab\x07pc,dev-a"]) == 2
        assert "control characters" in one_error_line(capsys)
        plan = write_plan(env["tmp"] / "d.json", server.base_url, devices=["lab,pc"], model="tiny")
        assert main(["campaign", "create", "c", "--from", str(plan)]) == 2
        assert "comma" in one_error_line(capsys)
        assert main(base + ["--devices", "dev-a,lab pc"]) == 0
        monkeypatch.setenv("SLM_DEVICE", "dev-a,lab pc")            # one label or two? neither: refused
        assert main(["campaign", "run", "c"]) == 2
        assert "comma" in one_error_line(capsys)
        monkeypatch.setenv("SLM_DEVICE", "lab pc")
        assert main(["campaign", "run", "c"]) == 0
    capsys.readouterr()
    shown = [d["device"] for d in store.campaign_status("c")["devices"]]
    by_device, missing = store.campaign_decision_inputs("c")
    assert shown == ["dev-a", "lab pc"] and sorted([*by_device, *missing]) == sorted(shown)


def test_a_bundle_with_a_label_that_breaks_the_rule_is_refused(stores, tmp_path, capsys):  # noqa: F811
    bundle, dst = stores
    data, _, _ = altered(bundle, tmp_path, "runs", "'lab,pc' AS device")
    refused(rewrite(bundle, tmp_path / "r.zip", files={"runs.parquet": data}), dst, capsys, "runs.device", "comma")


def test_csv_cells_lose_terminal_escapes(env):
    from core.output import csv_cell, csv_row
    assert csv_row(["\x1b[31mred\x1b[0m\x07-model", "\x1b]0;title\x07=1+2", "a\r\nb\tc", 5]) == \
        ["red-model", "'=1+2", "a\r\nb\tc", 5]
    assert csv_cell("\x9b31mx") == "x"
    path = env["tmp"] / "t.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerow(csv_row(["\x1b[2J\x1b[31mboom"]))
    assert "\x1b" not in path.read_text()
