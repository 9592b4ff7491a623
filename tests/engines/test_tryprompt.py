"""Models page back end: load/unload in separate processes, and "try a prompt" on real runtimes."""
import os

import pytest

from core.errors import UserError
from core.engines.pool import LoadedModels
from core.catalog.models import list_models
from core.engines.tryprompt import stream_answer
from tests.support.store import migrated

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def models():
    return {m["backend"]: m for m in sorted(list_models(include_catalog=False, include_endpoints=False).models,
                                            key=lambda m: -(m["disk_mb"] or 0))}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("backend", ["foundry", "llamacpp"])
def test_try_prompt_streams_and_measures(models, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "t.duckdb")))
    model = models[backend]  # the smallest model of that backend (sorted largest first above)
    pool = LoadedModels()
    try:
        stats: dict = {}
        pieces = list(stream_answer(model, "Name one colour.", pool=pool, max_tokens=16, stats=stats))
        assert "".join(pieces).strip()
        assert model["id"] in pool.ids()
        pid = pool.get(model["id"]).pid()
        assert pid and pid != os.getpid() and alive(pid)  # the model runs in its own process
        assert stats["completion_tokens"] > 0
        assert stats["token_count_source"] == ("usage" if backend == "foundry" else "tokenizer")
        assert 0 < stats["ttft_ms"] <= stats["e2e_ms"]
        if stats["completion_tokens"] >= 2:
            assert stats["decode_tok_s"] > 0
        pool.unload(model["id"])
        assert model["id"] not in pool.ids()
        for _ in range(100):
            if not alive(pid):
                break
            import time
            time.sleep(0.05)
        assert not alive(pid) or open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"
    finally:
        pool.close_all()


def test_endpoint_models_are_not_loadable(models):
    with pytest.raises(UserError, match="loaded by their server"):
        LoadedModels().load({"id": "x", "backend": "openai"})


@pytest.mark.parametrize("backend", ["foundry", "llamacpp"])
def test_a_loaded_model_whose_process_died_is_dropped_and_reloads(models, backend, tmp_path, monkeypatch):
    import signal

    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "t.duckdb")))
    model = models[backend]
    pool = LoadedModels()
    try:
        pool.load(model)
        pid = pool.get(model["id"]).pid()
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):   # the kill lands asynchronously
            if model["id"] not in pool.ids():
                break
            import time
            time.sleep(0.05)
        assert model["id"] not in pool.ids()   # not listed as loaded any more
        pieces = list(stream_answer(model, "Name one colour.", pool=pool, max_tokens=8))
        assert "".join(pieces).strip()          # loaded afresh, in a new process
        assert pool.get(model["id"]).pid() != pid
    finally:
        pool.close_all()
