"""A registered folder's genai_config.json names files inside the folder only (issue 18): an absolute name or one
leaving the folder with '..' is refused before Foundry Local is asked anything; a deeply nested config is a problem
named in one line, never a RecursionError."""
from __future__ import annotations

import json

import pytest

from core.catalog import foundry
from core.errors import UserError


def _folder(tmp_path, filename):
    f = tmp_path / "m"
    f.mkdir()
    (f / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": filename}}}))
    (f / "tokenizer.json").write_text("{}")
    (f / "chat_template.jinja").write_text("{{ messages }}")
    return f


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.onnx", "sub/../../outside.onnx", "C:\\x.onnx"])
def test_file_names_outside_the_folder_are_refused(tmp_path, name):
    (tmp_path / "outside.onnx").write_bytes(b"x")          # exists: only the name's place refuses it
    folder = _folder(tmp_path, name)
    problems = foundry.validate_model_folder(folder)
    assert any("not a file inside the folder" in p for p in problems), problems
    with pytest.raises(UserError, match="not a file inside the folder"):
        foundry.register_local_model(folder, "evil:1", display_name="e", publisher="p", license="mit")


def test_a_link_leaving_the_folder_is_refused(tmp_path):
    (tmp_path / "outside.onnx").write_bytes(b"x")
    folder = _folder(tmp_path, "model.onnx")
    (folder / "model.onnx").symlink_to(tmp_path / "outside.onnx")
    assert any("not a file inside the folder" in p for p in foundry.validate_model_folder(folder))


def test_a_name_inside_is_fine_and_a_deep_config_is_one_problem(tmp_path):
    folder = _folder(tmp_path, "sub/model.onnx")
    (folder / "sub").mkdir()
    (folder / "sub" / "model.onnx").write_bytes(b"x")
    assert foundry.validate_model_folder(folder) == []
    (folder / "genai_config.json").write_text('{"model": ' + "[" * 50_000 + "]" * 50_000 + "}")
    problems = foundry.validate_model_folder(folder)
    assert len(problems) == 1 and "nested deeper" in problems[0]
