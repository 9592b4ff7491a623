"""Foundry Local layer and worker, against the real runtime and the real starter models (no mocks)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.catalog import foundry
from core.config import REPO_ROOT, RUNTIME_DIR
from core.errors import UserError
from core.engines.foundry_worker import FoundryWorker, loaded_model_ids
from core.catalog.starter import starter_models

SMALLEST = min(starter_models(), key=lambda r: (r["parameters"] != "135M", r["quantization"] != "int4"))


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie that nobody reaped would still answer; ours are waited for
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0


@pytest.fixture()
def test_registration():
    """Register test ids in the real LOCAL catalog and always remove them afterwards."""
    ids: list[str] = []
    yield ids
    for model_id in ids:
        foundry.unregister_local_model(model_id)


def _copy_model_folder(dst: Path, *, corrupt: bool = False) -> Path:
    src = Path(SMALLEST["path"])
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name.startswith("model.onnx") or entry.name.startswith("."):
            continue
        shutil.copy2(entry, dst / entry.name)
    if corrupt:
        (dst / "model.onnx").write_bytes(b"this is not an onnx model\n" * 100)
    else:
        for name in ("model.onnx", "model.onnx.data"):
            os.link(src / name, dst / name)
    return dst


# --- loading and chatting -----------------------------------------------------------------------------

@pytest.mark.models
def test_smallest_starter_model_answers_with_usage_tokens():
    with FoundryWorker(SMALLEST["id"]) as worker:
        pid = worker.pid
        load = worker.load()
        assert load["load_s"] > 0
        assert load["rss_after_load_mb"] > load["rss_before_mb"] > 0
        assert load["execution_provider"] == "CPUExecutionProvider"
        assert SMALLEST["id"] in loaded_model_ids()

        events = list(worker.chat([{"role": "user", "content": "What is the capital of France?"}],
                                  temperature=0.0, max_tokens=32, seed=0))
        kinds = [e["type"] for e in events]
        assert kinds[0] == "start" and kinds[-1] == "done", events[-1]
        chunks = [e for e in events if e["type"] == "chunk"]
        text = "".join(e["text"] for e in chunks)
        assert text.strip()
        assert all(e["text"] for e in chunks)
        done = events[-1]
        assert done["completion_tokens"] > 0
        assert done["prompt_tokens"] > 0
        assert done["finish_reason"] in ("stop", "length")
        times = [e["t"] for e in events]
        assert times == sorted(times)

        stats = worker.stats()
        assert stats["peak_rss_mb"] >= stats["rss_mb"] > 0 and stats["cpu_s"] > 0

        # a fresh session per request: the same request gives the same answer (no history)
        again = list(worker.chat([{"role": "user", "content": "What is the capital of France?"}],
                                 temperature=0.0, max_tokens=32, seed=0))
        assert "".join(e.get("text", "") for e in again) == text
        assert again[-1]["prompt_tokens"] == done["prompt_tokens"]
    assert _process_gone(pid)
    assert SMALLEST["id"] not in loaded_model_ids()


@pytest.mark.models
def test_worker_killed_mid_answer_yields_error_event():
    with FoundryWorker(SMALLEST["id"]) as worker:
        worker.load()
        events = []
        for event in worker.chat([{"role": "user", "content": "Write a long story about a cat."}], max_tokens=200):
            events.append(event)
            if event["type"] == "chunk" and len(events) == 2:
                os.kill(worker.pid, signal.SIGKILL)
        assert events[-1]["type"] == "error"
        assert events[-1]["error"] == "worker exited with code -9"


@pytest.mark.models
def test_model_that_will_not_load_raises_user_error_and_worker_is_gone(tmp_path, test_registration):
    folder = _copy_model_folder(tmp_path / "corrupt", corrupt=True)
    model_id = foundry.register_local_model(folder, "slm-test-corrupt-generic-cpu:1", display_name="corrupt",
                                            publisher="test", license="apache-2.0")
    test_registration.append(model_id)
    worker = FoundryWorker(model_id).start()
    pid = worker.pid
    with pytest.raises(UserError) as info:
        worker.load()
    message = str(info.value)
    assert message.startswith(f"cannot load {model_id}: ")
    assert "\n" not in message and len(message) < 400
    assert ".cc:" not in message and "failed" in message
    assert worker.proc is None and _process_gone(pid)


# --- listing -------------------------------------------------------------------------------------------

@pytest.mark.models
def test_listing_with_public_catalog_unreachable_is_quiet(capfd, tmp_path):
    # A subprocess so the runtime is configured with an unreachable catalog (a closed local port): the
    # real native fetch fails after its retries, as it does on this offline machine. Its output goes to
    # the file descriptors capfd captures. The runtime logs from an asynchronous thread, so the script
    # waits a moment before it ends; what Python itself writes to stderr afterwards (a line, and a log
    # handler made before the runtime started, as Streamlit's is) must still reach the terminal.
    code = (
        "import json, logging, sys, time\n"
        "early = logging.getLogger('early')\n"
        "early.addHandler(logging.StreamHandler())\n"
        "from core.catalog import foundry\n"
        "t = time.perf_counter()\n"
        "rows, notice = foundry.list_public_catalog(refresh=True)\n"
        "first_s = time.perf_counter() - t\n"
        "t = time.perf_counter()\n"
        "rows2, notice2 = foundry.list_public_catalog()\n"
        "second_s = time.perf_counter() - t\n"
        "local = foundry.list_local_models()\n"
        "print(json.dumps({'rows': rows, 'notice': notice, 'notice2': notice2, 'local': local,\n"
        "                  'first_s': first_s, 'second_s': second_s}))\n"
        "time.sleep(1.0)\n"
        "print('python stderr still reaches the terminal', file=sys.stderr)\n"
        "early.warning('so does an early log handler')\n"
    )
    env = dict(os.environ, SLM_FOUNDRY_CATALOG_URL="http://127.0.0.1:9/asset-gallery/v1.0/models",
               PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env)
    out, err = capfd.readouterr()
    assert proc.returncode == 0, err
    # nothing the native layer logs reaches the terminal; Python's own stderr does
    assert err == "python stderr still reaches the terminal\nso does an early log handler\n"
    result = json.loads(out)
    assert result["rows"] == []
    assert result["notice"] == foundry.OFFLINE_NOTICE
    assert result["notice2"] == foundry.OFFLINE_NOTICE  # remembered: not asked again
    ids = {row["id"] for row in result["local"]}
    assert {r["id"] for r in starter_models()} <= ids
    for row in result["local"]:
        assert set(row) == set(foundry.MODEL_KEYS)
        assert row["source"] == "foundry-local" and row["backend"] == "foundry"
    print(f"offline catalog: first {result['first_s']:.2f} s, remembered {result['second_s']:.4f} s")


def test_listing_in_process_prints_nothing(capfd):
    rows, notice = foundry.list_public_catalog()
    local = foundry.list_local_models()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    if not rows:  # offline, as this machine is
        assert notice == foundry.OFFLINE_NOTICE
    assert all(set(r) == set(foundry.MODEL_KEYS) for r in local + rows)


@pytest.mark.models
def test_local_rows_have_measured_size_and_metadata():
    rows = {r["id"]: r for r in foundry.list_local_models()}
    for recipe in starter_models():
        row = rows[recipe["id"]]
        assert row["cached"] is True
        assert row["path"] == str(Path(recipe["path"]).resolve())
        assert row["disk_mb"] == foundry.folder_size_mb(recipe["path"]) and row["disk_mb"] > 50
        assert row["license"] == recipe["license"] and row["publisher"] == recipe["publisher"]
        assert row["display_name"] == recipe["display_name"]
        assert row["parameters"] == recipe["parameters"] and row["quantization"] == recipe["quantization"]
        assert row["context_length"] and row["context_length"] > 0
        assert row["execution_provider"] == "CPUExecutionProvider"
        assert row["capabilities"] == ["chat-completion"]


def test_quiet_native_sends_fd_output_to_the_log(capfd):
    marker = f"quiet-native-marker-{os.getpid()}"
    with foundry.quiet_native():
        os.write(2, (marker + "\n").encode())
        os.write(1, (marker + "\n").encode())
    os.write(2, b"visible\n")
    out, err = capfd.readouterr()
    assert marker not in out and marker not in err
    assert err == "visible\n"
    assert marker in foundry.NATIVE_LOG.read_text(errors="replace")


def test_execution_providers_include_cpu():
    eps = foundry.execution_providers()
    assert eps[0] == {"name": "CPUExecutionProvider", "registered": True, "builtin": True}
    assert all({"name", "registered"} <= set(ep) for ep in eps)


def test_online_operations_offline_are_one_line_user_errors(monkeypatch):
    from core.catalog.foundry import catalog, downloads
    monkeypatch.setattr(downloads, "CATALOG_HOST", "catalog.invalid")  # never resolves (RFC 2606)
    monkeypatch.setattr(catalog, "CATALOG_STATE", RUNTIME_DIR / "foundry-catalog-state-test.json")
    try:
        with pytest.raises(UserError, match="needs the internet"):
            foundry.download_model("qwen2.5-0.5b-instruct-generic-cpu:4")
        with pytest.raises(UserError, match="needs the internet"):
            foundry.register_execution_providers()
    finally:
        catalog.CATALOG_STATE.unlink(missing_ok=True)


# --- bring your own model ---------------------------------------------------------------------------------

def test_register_folder_without_genai_config_names_it(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(UserError) as info:
        foundry.register_local_model(tmp_path, "slm-test-nogenai-generic-cpu:1", display_name="x",
                                     publisher="x", license="mit")
    assert "genai_config.json" in str(info.value)
    assert foundry.get_local_model("slm-test-nogenai-generic-cpu:1") is None


def test_validate_model_folder_names_each_missing_piece(tmp_path):
    assert foundry.validate_model_folder(tmp_path / "absent") == [f"not a folder: {tmp_path / 'absent'}"]
    problems = foundry.validate_model_folder(tmp_path)
    assert any("genai_config.json" in p for p in problems)
    assert any("tokenizer.json" in p for p in problems)
    assert any("chat template" in p for p in problems)

    (tmp_path / "genai_config.json").write_text("{not json")
    assert any("cannot be parsed" in p for p in foundry.validate_model_folder(tmp_path))

    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": "model.onnx"}}}))
    (tmp_path / "tokenizer.json").write_text("{}")
    assert foundry.validate_model_folder(tmp_path) == [
        "missing model file model.onnx (named in genai_config.json)",
        "missing chat template (chat_template in tokenizer_config.json or chat_template.jinja)",
    ]
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert foundry.validate_model_folder(tmp_path) == []
    (tmp_path / "tokenizer_config.json").write_text("{}")
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    assert foundry.validate_model_folder(tmp_path) == []


def test_register_rejects_malformed_id(tmp_path):
    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": "model.onnx"}}}))
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    with pytest.raises(UserError, match="name:version"):
        foundry.register_local_model(tmp_path, "no version", display_name="x", publisher="x", license="mit")


@pytest.mark.models
def test_register_same_id_twice_is_idempotent(tmp_path, test_registration):
    folder = _copy_model_folder(tmp_path / "copy")
    model_id = "slm-test-idempotent-generic-cpu:1"
    test_registration.append(model_id)
    first = foundry.register_local_model(folder, model_id, display_name="Idempotent test", publisher="test",
                                         license="apache-2.0", parameters="135M", quantization="int4")
    second = foundry.register_local_model(folder, model_id, display_name="Idempotent test", publisher="test",
                                          license="apache-2.0", parameters="135M", quantization="int4")
    assert first == second == model_id
    rows = [r for r in foundry.list_local_models() if r["id"] == model_id]
    assert len(rows) == 1
    assert rows[0]["display_name"] == "Idempotent test" and rows[0]["license"] == "apache-2.0"
    assert rows[0]["path"] == str(folder.resolve())
    # registrations persist across processes
    code = ("from core.catalog import foundry; m = foundry.get_local_model('%s'); print(m.get_path() if m else None)"
            % model_id)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert proc.stdout.strip() == str(folder.resolve())
