"""The starter GGUFs are hash-checked (issue 18): the pins in data/starter_models.json are the real files' sha256,
and a cached copy that does not match is refused at set-up, naming the file."""
from __future__ import annotations

import hashlib
import json

import pytest

from core.catalog import starter
from core.catalog.starter import RECIPES_FILE, StepError, starter_gguf_path


def _pins() -> dict:
    return json.loads(RECIPES_FILE.read_text())["file_sha256"]


def test_every_source_file_is_pinned_and_the_smollm2_pin_is_the_real_file():
    data = json.loads(RECIPES_FILE.read_text())
    pins = _pins()
    for source in data["sources"].values():
        assert len(pins.get(source["file"]) or source.get("sha256") or "") == 64, source["file"]
    path = starter_gguf_path()
    if not path.exists():
        pytest.skip("python -m core setup-models has not run")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == pins[path.name]


def test_a_changed_cached_gguf_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_CACHE", str(tmp_path))
    data = json.loads(RECIPES_FILE.read_text())
    name, source = next((n, s) for n, s in data["sources"].items() if s["file"] == starter.SMOLLM2_GGUF)
    fake = starter.cache_dir() / "gguf" / source["file"]
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"GGUF not the weights")
    with pytest.raises(StepError, match="sha256"):
        starter._download_gguf(name, source, lambda *a: None)
