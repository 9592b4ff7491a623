"""Hostile input through the real CLI: keys where names belong, credentials in URLs, files too large, too deep
or of the wrong types, an endpoint whose model ids and answers are hostile. One line on stderr, exit 2, nothing
stored; what is stored and written is redacted and escaped."""
import csv
import json
import os
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from core.cli import main
from core.store import bench as bench_db
from core.store import connect
from core.store import endpoints as ep_store
from tests.support.hostile_server import LEAKED_KEY, MODELS, HostileServer

KEY = "sk-proj-Abc123Def456Ghi789Jkl012"
ALNUM_KEY = "Xk9vQ2mP7rT4wZ8nB3cF6hJ1"


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "h.duckdb"
    monkeypatch.setenv("SLM_DB", str(path))
    monkeypatch.setenv("SLM_CACHE", str(tmp_path / "cache"))      # endpoints accepted here stay in the test
    monkeypatch.setenv("BENCH_STREAM", "0")
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    return path


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    return err


# ------------------------------------------------------------------ secrets

@pytest.mark.parametrize("key", [KEY, ALNUM_KEY])
def test_endpoint_add_refuses_a_key_given_as_the_variable_name(db, capsys, key):
    assert main(["endpoint", "add", "x", "http://127.0.0.1:9/v1", "--api-key-env", key]) == 2
    err = _err_line(capsys)
    assert "this looks like a key: put it in an environment variable and give its name" in err
    assert key not in err
    assert ep_store.list_endpoints() == []


@pytest.mark.parametrize("url,shown", [("http://bob:hunter2@127.0.0.1:9/v1", "user:password@"),
                                       ("http://127.0.0.1:9/v1?api-key=hunter2", "api-key="),
                                       ("http://127.0.0.1:9/v1?key=hunter2", "key="),
                                       ("https://h.example/openai?sig=hunter2&x=1", "sig=")])
def test_endpoint_add_refuses_credentials_in_the_url(db, capsys, url, shown):
    assert main(["endpoint", "add", "x", url]) == 2
    err = _err_line(capsys)
    assert shown in err and "hunter2" not in err
    assert ep_store.list_endpoints() == []


def test_endpoint_add_accepts_a_variable_name(db, capsys):
    assert main(["endpoint", "add", "x", "http://127.0.0.1:9/v1", "--api-key-env", "OPENAI_API_KEY"]) == 0
    assert ep_store.list_endpoints() == [{"name": "x", "base_url": "http://127.0.0.1:9/v1",
                                          "api_key_env": "OPENAI_API_KEY"}]


def test_bench_refuses_a_key_as_api_key_env(db, tmp_path, capsys):
    prompts = tmp_path / "p.json"
    prompts.write_text('["hi"]')
    rc = main(["bench", "--prompts", str(prompts), "--endpoint", "http://127.0.0.1:9/v1", "--model", "m",
               "--api-key-env", KEY])
    assert rc == 2
    err = _err_line(capsys)
    assert "looks like a key" in err and KEY not in err
    assert bench_db.list_runs() == []


# ------------------------------------------------------------------ input files

def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("content,why", [
    ("[" * 5000 + "]" * 5000, "nested deeper than 64 levels (SLM_MAX_JSON_DEPTH)"),
    (json.dumps(["p"] * 100_000), "100,000 prompts; the limit is 10,000 (SLM_MAX_PROMPTS)"),
    (json.dumps(["x" * 1000] * 52_000), "is too large (49.8 MB; the limit is 10.0 MB, SLM_MAX_FILE_MB)"),
    ('["ok", NaN]', "NaN is not a number JSON allows"),
    ('[{"text": "a", "tags": [1]}]', "prompt 1 in p.json: tags must be a list of strings"),
])
def test_bench_refuses_bad_prompt_files_before_anything_runs(db, tmp_path, capsys, content, why):
    f = _write(tmp_path / "p.json", content)
    rc = main(["bench", "--prompts", str(f), "--endpoint", "http://127.0.0.1:9/v1", "--model", "m"])
    assert rc == 2
    err = _err_line(capsys)
    assert why in err and "p.json" in err
    assert bench_db.list_runs() == []


@pytest.mark.parametrize("entry,why", [
    ({"size_mb": "2.4 GB"}, 'm.size_mb must be a number of megabytes (0 or more), got "2.4 GB"'),
    ({"size_mb": True}, "m.size_mb must be a number"),
    ({"capabilities": "chat"}, "m.capabilities must be a list of strings"),
    ({"license": {"x": 1}}, "m.license must be text"),
])
def test_bench_refuses_a_bad_models_json_before_any_level(db, tmp_path, capsys, entry, why):
    prompts = _write(tmp_path / "p.json", '["hi"]')
    config = _write(tmp_path / "models.json", json.dumps({"m": entry}))
    with HostileServer() as server:
        rc = main(["bench", "--prompts", str(prompts), "--config", str(config), "--endpoint", server.base_url])
    assert rc == 2
    err = _err_line(capsys)
    assert why in err and "models.json" in err
    assert bench_db.list_runs() == []


@pytest.mark.parametrize("content,why", [
    ('{"name": "r", "criteria": ' + "[" * 3000 + "]" * 3000 + "}", "nested deeper than 64 levels"),
    ('{"name": "r", "criteria": [{"name": "c", "description": "d", "weight": 1e400}]}', "too large"),
    ('{"name": "r", "criteria": [{"name": "c", "description": "d", "weight": NaN}]}', "NaN"),
])
def test_rubric_import_refuses_deep_or_non_finite_files(db, tmp_path, capsys, content, why):
    f = _write(tmp_path / "r.json", content)
    assert main(["rubric", "import", str(f)]) == 2
    err = _err_line(capsys)
    assert why in err and "r.json" in err
    with connect() as con:
        assert con.execute("SELECT count(*) FROM rubrics WHERE name = 'r'").fetchone()[0] == 0


# ------------------------------------------------------------------ a hostile endpoint end to end

def test_hostile_endpoint_run_report_and_terminal(db, tmp_path, capsys):
    prompts = _write(tmp_path / "p.json", '["say something"]')
    out = tmp_path / "out"
    with HostileServer() as server:
        rc = main(["bench", "--prompts", str(prompts), "--endpoint", server.base_url, "--rounds", "1",
                   "--warmup", "0", "--json", str(tmp_path / "run.json")]
                  + [a for m in MODELS for a in ("--model", m)])
        assert rc == 0
        assert main(["endpoint", "add", "evil", server.base_url]) == 0
        assert main(["models", "--no-catalog"]) == 0
        assert main(["endpoint", "list"]) == 0
    assert main(["bench-report", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    terminal = captured.out + captured.err
    assert "\x1b" not in terminal and "\x07" not in terminal       # ANSI escapes and bells stripped
    assert "red-model" in terminal                                  # ... the name itself still shown
    assert LEAKED_KEY not in terminal

    # stored errors and the --json file: the key redacted
    with connect() as con:
        errors = [r[0] for r in con.execute("SELECT error FROM requests WHERE error IS NOT NULL "
                                            "UNION ALL SELECT error FROM run_models WHERE error IS NOT NULL").fetchall()]
    assert errors and all(LEAKED_KEY not in e for e in errors)
    assert any("HTTP 401" in e and "***" in e for e in errors)
    assert LEAKED_KEY not in (tmp_path / "run.json").read_text()

    # CSVs: no cell a spreadsheet would run
    for name in ("benchmark_requests.csv", "benchmark_summary.csv"):
        rows = list(csv.DictReader((out / name).open(newline="", encoding="utf-8")))
        assert rows
        for row in rows:
            for cell in row.values():
                assert not (cell[:1] in ("\t", "\r") or cell.lstrip()[:1] in ("=", "+", "@")), (name, cell)
                assert not cell.startswith("- "), (name, cell)
        assert "'=1+2-model" in {r["model"] for r in rows}
    outputs = {r["output_text"] for r in csv.DictReader((out / "benchmark_requests.csv").open(newline=""))}
    assert "'" + MODELS["=1+2-model"] in outputs and "'- item one\n- item two" in outputs
    assert LEAKED_KEY not in (out / "benchmark_requests.csv").read_text()

    # the Markdown report: names as text, no image, link or HTML
    md = (out / "benchmark_report.md").read_text()
    stack, types = MarkdownIt("commonmark").enable("table").parse(md), set()
    while stack:
        t = stack.pop()
        types.add(t.type)
        stack.extend(t.children or [])
    assert not types & {"image", "link_open", "html_inline", "html_block"}
    assert "\x1b" not in md


# ------------------------------------------------------------------ register over another folder

@pytest.mark.models
def test_register_over_another_folder_asks_first(tmp_path, capsys):
    from core.catalog import foundry
    from tests.catalog.test_foundry import _copy_model_folder

    model_id = "slm-test-replace-generic-cpu:1"
    first, second = _copy_model_folder(tmp_path / "one"), _copy_model_folder(tmp_path / "two")
    try:
        assert main(["register", str(first), "--id", model_id]) == 0
        assert main(["register", str(first), "--id", model_id]) == 0          # same folder: idempotent
        capsys.readouterr()
        assert main(["register", str(second), "--id", model_id]) == 2
        err = _err_line(capsys)
        assert f"model id {model_id} is already registered for {first.resolve()}" in err and "--replace" in err
        assert foundry.get_local_model(model_id).get_path() == str(first.resolve())   # untouched
        assert main(["register", str(second), "--id", model_id, "--replace"]) == 0
        assert foundry.get_local_model(model_id).get_path() == str(second.resolve())
    finally:
        foundry.unregister_local_model(model_id)
    assert os.path.isdir(first)   # replacing never deletes files
