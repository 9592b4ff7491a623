"""The length sweep on the real starter engines: llama.cpp beyond 2,048 tokens (it failed before: n_ctx was fixed
at 2,048), n_ctx / max_length as run settings, prompt tokens recorded, our count against the engines' own."""
import json

import pytest

from core.bench.sweep import plan as L
from core.bench.sweep import tokens as P
from core.bench.run.inputs import ModelSpec, Settings
from core.config import REPO_ROOT
from core.engines.base import RequestOptions
from tests.support.store import migrated

GGUF = REPO_ROOT / "data/models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "smollm2-135m-instruct-int4-generic-cpu:1"
FOLDER = REPO_ROOT / "data/models" / MODEL_ID


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "lengths.duckdb")))


@pytest.mark.skipif(not GGUF.is_file(), reason="starter GGUF not built (python -m core setup-models)")
def test_llamacpp_beyond_2048_tokens_with_n_ctx_as_a_run_setting(db):
    from core.store import bench as store
    spec = ModelSpec(model=GGUF.name, backend="llamacpp", path=str(GGUF), label="gguf")
    outcome, (sw,) = L.run_sweep([spec], [2100], Settings(rounds=1, warmup=0, max_tokens=4, timeout_s=900))
    assert outcome.status == "completed"
    (point,) = sw["points"]
    assert point["ok"], point["error"]
    plan_tokens = P.gguf_tokens(str(GGUF))
    assert point["prompt_tokens_source"] == "gguf" and 2100 < point["prompt_tokens"] < 2100 + 40
    # n_ctx: what the prompt + max tokens need (with a margin), rounded up, capped at the window; recorded
    need = point["prompt_tokens"] + 4
    assert need <= sw["context_setting"] <= min(need + L.CONTEXT_MARGIN + 256, plan_tokens.window)
    assert sw["context_setting_name"] == "n_ctx" and sw["context_window"] == 8192
    assert sw["kv_cache_mb"] == pytest.approx(plan_tokens.kv_bytes_per_token * sw["context_setting"] / 1048576)
    (model,) = store.get_run(outcome.run_id)["models"]
    assert model["environment"]["runtime"]["n_ctx"] == sw["context_setting"]
    assert any(f"n_ctx {sw['context_setting']}" in n for n in model["notes"])
    rows = store.run_requests(outcome.run_id)
    assert rows["prompt_tokens"].notna().all()


@pytest.mark.skipif(not GGUF.is_file(), reason="starter GGUF not built (python -m core setup-models)")
def test_llamacpp_prompt_tokens_match_the_servers_own_count():
    from core.engines.llamacpp import LlamaCppEngine
    engine = LlamaCppEngine(str(GGUF), n_ctx=512)
    engine.open()
    try:
        messages = P.request_messages("Notes, please: Ana will send the budget by Friday.")
        rec = engine.run_one(messages, RequestOptions(max_tokens=2, stream=False))   # non-streaming: with usage
        assert rec.error is None and rec.prompt_tokens
        assert engine.count_prompt_tokens(messages) == rec.prompt_tokens
    finally:
        engine.close()


@pytest.mark.skipif(not FOLDER.is_dir(), reason="starter models not built (python -m core setup-models)")
def test_foundry_max_length_is_a_run_setting_and_our_count_is_the_runtimes():
    from core.catalog.foundry import CONTEXTS_DIR, genai_context, list_local_models
    from core.engines.foundry import FoundryEngine
    engine = FoundryEngine(MODEL_ID, model_row={"path": str(FOLDER)}, context_length=1024)
    info = engine.open()
    try:
        assert engine.load_id == MODEL_ID.replace(":", "-ctx1024:")
        folder = CONTEXTS_DIR / engine.load_id.replace(":", "-v")
        assert genai_context(folder)["max_length"] == 1024 and genai_context(FOLDER)["max_length"] == 8192
        assert json.loads((folder / "genai_config.json").read_text())["search"]["past_present_share_buffer"]
        assert info.runtime["max_length"] == 1024 and "max_length 1024" in info.notes[0]
        messages = P.request_messages("Notes, please: Ana will send the budget by Friday.")
        rec = engine.run_one(messages, RequestOptions(max_tokens=2))
        assert rec.error is None
        assert P.folder_tokens(FOLDER).prompt_tokens(messages) == rec.prompt_tokens
    finally:
        engine.close()
    assert all("-ctx" not in m["id"] for m in list_local_models())   # the run's registration stays out of the list


def test_context_windows_are_in_the_model_list():
    from core.catalog.models import list_models
    rows = list_models(include_catalog=False, include_endpoints=False).models
    gguf = [m for m in rows if m["backend"] == "llamacpp"]
    if GGUF.is_file():
        assert gguf and gguf[0]["context_length"] == P.gguf_tokens(str(GGUF)).window == 8192
    starter = [m for m in rows if m["id"] == MODEL_ID]
    if FOLDER.is_dir():
        assert starter and starter[0]["context_length"] == 8192
