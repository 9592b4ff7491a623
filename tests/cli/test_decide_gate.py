"""The judge trust gate on every decision path: `decide --runs` and `decide --devices` mark quality that rests
on a judge below the gate "unverified" (JSON, Markdown, HTML), honour --judge-min-kappa, and use the gate
stored by the Quality page when none is given. A real DuckDB file with real stored human and judge scores."""
import json

import pytest

from core.cli import main
from core.quality.calibration import Gate, save_gate, stored_gate
from tests.support import gated_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("gate") / "gate.duckdb"
    gated_store.build_file(path)
    return path


@pytest.fixture()
def db(store, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(store))
    save_gate(Gate())             # each test starts from the default gate
    return store


def _decide(tmp_path, *args) -> dict:
    out = tmp_path / "d.json"
    assert main(["decide", *args, "--weights", "quality=1", "--json", str(out)]) == 0
    return {c["model"]: c for c in json.loads(out.read_text())["candidates"]}


PATHS = {"runs": ["--runs", "rc"], "devices": ["--devices", "dev-a,dev-b"]}


@pytest.mark.parametrize("path", list(PATHS))
def test_judge_below_the_asked_gate_is_unverified_on_runs_and_devices(db, tmp_path, path):
    # kappa 0.67 on 4 co-scored outputs: below a gate of 0.9, above one of 0.5
    below = _decide(tmp_path, *PATHS[path], "--judge-min-kappa", "0.9", "--judge-min-outputs", str(gated_store.CO_SCORED))
    judged = below["m-b"]
    assert judged["quality_detail"]["source"] == "judge" and judged["quality_detail"]["verified"] is False
    assert any(f.startswith("quality unverified: ") and "kappa 0.67" in f for f in judged["flags"]), judged["flags"]
    # m-a has people's scores: never marked
    assert below["m-a"]["quality_detail"]["source"] == "human"
    assert not any("unverified" in f for f in below["m-a"]["flags"])

    above = _decide(tmp_path, *PATHS[path], "--judge-min-kappa", "0.5", "--judge-min-outputs", str(gated_store.CO_SCORED))
    assert above["m-b"]["quality_detail"]["verified"] is True
    assert not any("unverified" in f for f in above["m-b"]["flags"])
    # the same quality number either way: the gate marks, it does not change the score
    assert above["m-b"]["criteria"]["quality"] == pytest.approx(judged["criteria"]["quality"])


@pytest.mark.parametrize("path", list(PATHS))
def test_the_gate_stored_by_the_quality_page_is_used_when_none_is_given(db, tmp_path, path):
    save_gate(Gate(0.5, gated_store.CO_SCORED))
    assert stored_gate() == Gate(0.5, gated_store.CO_SCORED)
    assert _decide(tmp_path, *PATHS[path])["m-b"]["quality_detail"]["verified"] is True
    save_gate(Gate(0.9, gated_store.CO_SCORED))
    assert _decide(tmp_path, *PATHS[path])["m-b"]["quality_detail"]["verified"] is False


@pytest.mark.parametrize("path", list(PATHS))
def test_markdown_and_html_exports_both_mark_unverified_quality(db, tmp_path, path):
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    for report in (md, html):
        assert main(["decide", *PATHS[path], "--weights", "quality=1", "--judge-min-kappa", "0.9",
                     "--judge-min-outputs", "4", "--report", str(report)]) == 0
    def row(lines, model):      # the matrix row whose id (last column) is the model's
        return next(x for x in lines if x.startswith(("| ", "<tr")) and f"{model} \\| openai" in x
                    or x.startswith("<tr") and f">{model} | openai" in x)

    md_lines, html_lines = md.read_text().splitlines(), html.read_text().splitlines()
    # the judge's mean 0.50 (scores 1, 2, 3, 2 on 1..3), marked; Markdown escapes the dot and the brackets
    assert "0.50 (unverified)" in row(md_lines, "m-b").replace("\\", "")
    assert "0.50 (unverified)" in row(html_lines, "m-b")
    assert "unverified" not in row(md_lines, "m-a") and "unverified" not in row(html_lines, "m-a")


def test_a_bad_gate_is_one_line(db, capsys):
    assert main(["decide", "--devices", "dev-a", "--judge-min-kappa", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "min kappa must be between -1 and 1" in err[0]
