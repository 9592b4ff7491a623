"""Starter pack: recipes, the conversion helpers, and `python -m core setup-models` on a built pack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.catalog import starter, starter_build, starter_files
from core.cli import models as cli_models
from core.config import MODELS_DIR, REPO_ROOT
from core.catalog.foundry import validate_model_folder


def test_recipes_name_the_required_models():
    recipes = {r["id"]: r for r in starter.starter_models()}
    assert {"smollm2-135m-instruct-int4-generic-cpu:1", "smollm2-135m-instruct-fp32-generic-cpu:1",
            "gemma-3-270m-int4-generic-cpu:1"} <= set(recipes)
    for recipe in recipes.values():
        for key in ("display_name", "publisher", "license", "parameters", "quantization", "precision", "source"):
            assert recipe[key], (recipe["id"], key)
        assert recipe["path"] == str(MODELS_DIR / recipe["id"])
        assert len(recipe["hash"]) == 16
    gemma = recipes["gemma-3-270m-int4-generic-cpu:1"]
    assert gemma["license"] == "gemma" and gemma["chat_template"] == "gemma"
    # the hash is a pure function of the recipe
    assert starter.starter_models() == starter.starter_models()
    assert starter.starter_gguf_path() == MODELS_DIR / "gguf" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_not_enough_disk_is_a_clear_error(tmp_path):
    with pytest.raises(starter.StepError, match="not enough disk space to build m1: need about"):
        starter._check_disk(tmp_path, 10**9, "m1")


def test_unigram_vocabulary_becomes_bpe_with_merges():
    unigram = {"type": "Unigram", "unk_id": 0, "byte_fallback": True,
               "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -2.0], ["ab", -3.0], ["abb", -4.0], ["c", -5.0]]}
    bpe = starter_build.unigram_to_bpe(unigram)
    assert bpe["type"] == "BPE" and bpe["unk_token"] == "<unk>" and bpe["byte_fallback"] is True
    assert bpe["vocab"] == {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "abb": 4, "c": 5}
    assert bpe["merges"] == [["a", "b"], ["ab", "b"]]  # higher-scored merged pieces first


def test_byte_level_tokenizer_gets_byte_level_decoder(tmp_path):
    data = {"pre_tokenizer": {"type": "ByteLevel"},
            "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}]},
            "model": {"type": "BPE", "byte_fallback": True, "vocab": {"a": 0}, "merges": []}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    starter_build.fix_tokenizer(tmp_path)
    fixed = json.loads((tmp_path / "tokenizer.json").read_text())
    assert fixed["decoder"]["type"] == "ByteLevel"
    assert fixed["model"]["byte_fallback"] is False


def test_chat_template_and_eos_tokens_are_written(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": True}))
    (tmp_path / "tokenizer.json").write_text(json.dumps({
        "added_tokens": [{"id": 106, "content": "<end_of_turn>"}], "model": {"type": "BPE", "vocab": {}}}))
    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {"eos_token_id": 1}}))
    starter_build.set_chat_template(tmp_path, "{{ messages }}")
    starter_build.add_eos_tokens(tmp_path, ["<end_of_turn>"])
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["chat_template"] == "{{ messages }}"
    assert (tmp_path / "chat_template.jinja").read_text() == "{{ messages }}"
    assert json.loads((tmp_path / "genai_config.json").read_text())["model"]["eos_token_id"] == [1, 106]


@pytest.mark.models
def test_built_models_are_complete_and_marked():
    for recipe in starter.starter_models():
        folder = Path(recipe["path"])
        assert validate_model_folder(folder) == [], recipe["id"]
        marker = json.loads((folder / starter_files.MARKER).read_text())
        assert marker["hash"] == recipe["hash"]
        assert not (folder / "tokenizer.model").exists()
    assert starter.starter_gguf_path().stat().st_size > 50 * 1024 * 1024


@pytest.mark.models
def test_setup_models_second_run_finds_everything_in_place():
    proc = subprocess.run([sys.executable, "-m", "core", "setup-models"], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    recipes = starter.starter_models()
    for index, recipe in enumerate(recipes, 1):
        line = next(l for l in lines if l.startswith(f"[{index}/{len(recipes)}] {recipe['id']}: "))
        assert ": in place, already registered (" in line, line
    assert lines[-1].startswith(f"starter models: {len(recipes)} in place, 0 copied from cache, 0 built, 0 failed")
    for word in ("download", "convert", "quantize", "build toolchain"):
        assert not any(word in l for l in lines), lines
    assert proc.stderr == ""


@pytest.mark.models
def test_a_failing_model_is_named_and_the_others_still_finish(tmp_path, monkeypatch, capsys):
    data = json.loads(starter.RECIPES_FILE.read_text())
    broken = dict(data["models"][0], id="slm-test-unbuilt-generic-cpu:1", precision="fp16")
    data["models"].insert(1, broken)
    recipes = tmp_path / "starter_models.json"
    recipes.write_text(json.dumps(data))
    monkeypatch.setattr(starter, "RECIPES_FILE", recipes)
    monkeypatch.setattr(starter, "BUILD_FREE_GB", 10.0**9)  # no disk is that large

    code = cli_models._cmd_setup_models(type("Args", (), {"quiet": False})())
    out, err = capsys.readouterr()
    assert code == 1
    assert "[2/4] slm-test-unbuilt-generic-cpu:1: FAILED: not enough disk space to build " \
           "slm-test-unbuilt-generic-cpu:1: need about" in out
    for index in (1, 3, 4):
        assert any(l.startswith(f"[{index}/4] ") and ": in place, already registered" in l for l in out.splitlines())
    assert out.splitlines()[-1].startswith("starter models: 3 in place, 0 copied from cache, 0 built, 1 failed")
    assert err.startswith("error: slm-test-unbuilt-generic-cpu:1: not enough disk space")
    assert not (MODELS_DIR / "slm-test-unbuilt-generic-cpu:1").exists()


def test_no_module_beside_the_build_script_shadows_what_it_imports():
    """starter_build.py runs as a script in .venv-build: its folder comes first on sys.path, so a module there
    named like a package it imports (gguf, transformers, ...) would be imported instead (a fresh machine's
    set-up failed that way: core/catalog/gguf.py hid the gguf package)."""
    import ast

    from core.catalog import starter
    tree = ast.parse(starter.BUILD_SCRIPT.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    beside = {p.stem for p in starter.BUILD_SCRIPT.parent.glob("*.py")} | {
        p.name for p in starter.BUILD_SCRIPT.parent.iterdir() if p.is_dir()}
    assert "gguf" in imported and not imported & beside, imported & beside
