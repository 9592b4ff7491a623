"""The benchmark report writers with any model name, output and error (property-based): the Markdown renders
only our own constructs and shows each name as text; both CSVs read back as written, with no live formula."""
import copy
import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from markdown_it import MarkdownIt

from core.bench.report import build_report, requests_csv, to_csv, to_markdown
from core.output import WORD_JOINER, csv_cell, term_text
from core.store import bench as db
from tests.support.store import migrated

META = ["<", ">", "&", "`", "*", "_", "[", "]", "(", ")", "!", "|", "#", "\\", "$", "=", "+", "-", "@", "\t", "\n",
        "\r", "\x1b[31m", "</script", "<!--", "![j](http://evil/x.png)", "=HYPERLINK(\"http://x\")", "- item", "  @A1"]
texts = st.lists(st.one_of(st.text(min_size=1, max_size=6), st.sampled_from(META)), min_size=1, max_size=6).map("".join)
MD_TOKENS = {"heading_open", "heading_close", "inline", "text", "paragraph_open", "paragraph_close",
             "bullet_list_open", "bullet_list_close", "list_item_open", "list_item_close", "table_open", "table_close",
             "thead_open", "thead_close", "tbody_open", "tbody_close", "tr_open", "tr_close", "th_open", "th_close",
             "td_open", "td_close", "softbreak", "strong_open", "strong_close", "code_inline"}


@pytest.fixture()
def report(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "p.duckdb")))
    db.create_run("r1", prompt_set="p", prompt_set_hash="ab" * 32, settings={"rounds": 1}, environment={"cpu": "x"},
                  prompts=[{"id": "p1", "text": "hi"}])
    for i, model in enumerate(["m0", "m1"]):
        db.save_level({"run_id": "r1", "model": model, "backend": "openai", "concurrency": 1, "status": "ok",
                       "position": i},
                      [{"request_id": f"q{i}{k}", "run_id": "r1", "model": model, "backend": "openai",
                        "concurrency": 1, "prompt_id": "p1", "round": k, "warmup": False, "ok": k == 0,
                        "ttft_ms": 10.0, "e2e_ms": 50.0, "tpot_ms": 2.0, "completion_tokens": 5,
                        "output_text": "out" if k == 0 else None, "error": None if k == 0 else "HTTP 500"}
                       for k in range(2)])
    db.finish_run("r1", "completed")
    return build_report("r1")


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(texts, min_size=2, max_size=2, unique=True), texts, texts)
def test_any_names_outputs_and_errors_stay_text(report, names, output, error):
    rep = copy.deepcopy(report)
    mapping = {"m0": names[0], "m1": names[1]}
    for r in rep.results:
        r["model"] = mapping[r["model"]]
        r["error"] = error
    rep.requests["model"] = [mapping[m] for m in rep.requests["model"]]
    rep.requests["output_text"] = [output if ok else None for ok in rep.requests["ok"]]
    rep.requests["error"] = [None if ok else error for ok in rep.requests["ok"]]

    stack, types, shown = MarkdownIt("commonmark").enable("table").parse(to_markdown(rep)), set(), []
    while stack:
        t = stack.pop()
        types.add(t.type)
        stack.extend(t.children or [])
        if t.type in ("text", "code_inline"):
            shown.append(t.content)
    assert types <= MD_TOKENS, types - MD_TOKENS
    shown_text = " ".join(shown).replace(WORD_JOINER, "")
    for n in names:
        assert " ".join(term_text(n).split()) in shown_text

    summary = list(csv.DictReader(io.StringIO(to_csv(rep), newline="")))
    assert sorted(r["model"] for r in summary) == sorted(csv_cell(n) for n in names)
    requests = list(csv.DictReader(io.StringIO(requests_csv(rep), newline="")))
    assert {r["output_text"] for r in requests if r["ok"] == "True"} == {csv_cell(output)}
    assert {r["error"] for r in requests if r["ok"] == "False"} == {csv_cell(error)}
    for row in summary + requests:
        for cell in row.values():
            assert not (cell[:1] in ("\t", "\r") or cell.lstrip()[:1] in ("=", "+", "@")), cell
