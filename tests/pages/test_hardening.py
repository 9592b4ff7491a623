"""Pages under AppTest with hostile input: a key pasted where the variable NAME belongs is refused and never
shown; a hostile endpoint name and error reach Streamlit only as escaped Markdown; and a source scan: every
Markdown-rendering call in pages/ passes its dynamic text through core.output.md_text, never unsafe_allow_html."""
import ast

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from core.output import md_text
from tests.support.store import migrated

KEY = "sk-proj-Abc123Def456Ghi789Jkl012"
HOSTILE = "![j](http://evil.example/x.png)<img src=x onerror=alert(1)>"


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "page.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)


def _models_page():
    import streamlit as st
    st.cache_data.clear()   # the model list is cached per process
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    return at.switch_page("pages/models.py").run()


def _all_values(at) -> str:
    out = []
    for kind in ("error", "warning", "caption", "markdown", "success", "info", "text", "code"):
        out += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(out)


def test_models_page_refuses_a_key_as_the_variable_name(db):
    from core.store import endpoints as store
    at = _models_page()
    at.text_input(key="models_ep_name").input("mine")
    at.text_input(key="models_ep_url").input("http://127.0.0.1:9/v1")
    at.text_input(key="models_ep_key").input(KEY)
    next(b for b in at.button if b.label == "Add endpoint").click()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert any("this looks like a key: put it in an environment variable and give its name" in e for e in errors)
    assert KEY not in _all_values(at)
    assert store.list_endpoints() == []


def test_hostile_endpoint_name_and_error_are_escaped_markdown(db):
    from core.store import endpoints as store
    store.add_endpoint(HOSTILE, "http://127.0.0.1:9/v1", None)     # unreachable: the page shows a caption
    at = _models_page()
    assert not at.exception, [e.message for e in at.exception]
    captions = [c.value for c in at.caption if "endpoint " in c.value and "unreachable" in c.value]
    assert len(captions) == 1 and md_text(HOSTILE) in captions[0], [c.value for c in at.caption]
    tokens = MarkdownIt("commonmark").parseInline(captions[0])[0].children
    assert {t.type for t in tokens} <= {"text"}   # no image, link or HTML when Streamlit renders it


def test_register_form_has_a_replace_confirmation(db):
    at = _models_page()
    box = at.checkbox(key="models_reg_replace")
    assert box.value is False and "replace" in box.label


# Every Streamlit call whose text is rendered as Markdown (Streamlit 1.67): the first argument of these (a
# message, or a widget's / container's label), tabs' labels, st.table's whole frame (cells and headers).
MARKDOWN_CALLS = {"error", "warning", "info", "success", "exception", "caption", "markdown", "toast", "title",
                  "header", "subheader", "write", "table", "metric", "expander", "tabs", "popover", "status",
                  "radio", "selectbox", "multiselect", "select_slider", "slider", "checkbox", "toggle", "button",
                  "download_button", "link_button", "page_link", "form_submit_button", "text_input", "text_area",
                  "number_input", "date_input", "time_input", "file_uploader", "color_picker", "camera_input",
                  "chat_input", "pills", "segmented_control", "feedback"}
ESCAPERS = {"md_text", "md_frame"}
SAFE_NAMES = {"len", "int", "float", "round", "min", "max", "sum"}


def _dynamic_parts(node):
    """Sub-expressions of a Markdown argument that are not constants, md_text(...) or formatted numbers."""
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ESCAPERS:
        return []
    if isinstance(node, (ast.List, ast.Tuple)):
        return [p for e in node.elts for p in _dynamic_parts(e)]
    if isinstance(node, ast.JoinedStr):
        out = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue) and not v.format_spec:
                out += _dynamic_parts(v.value)
        return out
    if isinstance(node, ast.BinOp):
        return _dynamic_parts(node.left) + _dynamic_parts(node.right)
    if isinstance(node, ast.IfExp):
        return _dynamic_parts(node.body) + _dynamic_parts(node.orelse)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in SAFE_NAMES:
        return []
    return [node]


# Expressions known to hold only our own text or numbers (ids we generate, statuses, counts, constants).
TRUSTED = {"snap.run_id", "snap.status", "snap.done", "snap.total", "eta", "ps.hash[:12]", "explanation(result.normalization)",
           "empty", "m.backend", "level", "m.phase", "m.done", "m.total", "failed", "m_eta", "idx + 1", "total", "done",
           "cand.slot", "c.name", "c.scale_min", "c.scale_max", "rss", "judge.POINTWISE_VERSION", "judge.PAIRWISE_VERSION",
           "pairs * 2", "pairs", "n", "summ['pairs']", "summ['inconsistent']", "res['rows']", "res['skipped']",
           "snap['done']", "snap['total']", "len(rub.criteria)", "len(rub.prompts)", "judge.DEFAULT_RETRIES",
           "summ['decided']", "idx", "', '.join((f'{c} {100 * w:.0f}%' for c, w in weights.items()))",
           "c", "label", "PAGE_FILES[page]", "step['name']", "PAGE_FILES[step['page']]",
           "QUICK.rounds", "QUICK.max_tokens", "NO_RUN",   # NO_RUN: ui/run_rubric.py's own constant text   # benchmark.py: the quick first run's defaults (whole numbers)
           "f.text"}   # decision.py: criterion names and export labels (constants); a page path. benchmark.py: a
# finding's text, whose every untrusted part core.bench.findings escaped with the md_text it is handed


def test_pages_pass_untrusted_text_to_markdown_only_through_md_text():
    problems = []
    shared = sorted((REPO_ROOT / "ui").glob("*.py"))     # what pages share (ui/) renders text too
    for path in sorted((REPO_ROOT / "pages").glob("*.py")) + shared + [REPO_ROOT / "app.py"]:
        source = path.read_text(encoding="utf-8")
        assert "unsafe_allow_html" not in source, path
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if getattr(node.func.value, "id", None) == "pool":   # LoadedModels.info(), not st.info()
                continue
            args = []
            if node.func.attr in MARKDOWN_CALLS and node.args:
                args.append(node.args[0])
            args += [k.value for k in node.keywords if k.arg in ("label", "body", "captions")]
            if node.func.attr == "metric":          # the value and delta render as Markdown too
                args += node.args[1:3] + [k.value for k in node.keywords if k.arg in ("value", "delta")]
            if node.func.attr == "progress":
                args += [k.value for k in node.keywords if k.arg == "text"] + node.args[1:2]
            args += [k.value for k in node.keywords if k.arg == "help"]
            for arg in args:
                for part in _dynamic_parts(arg):
                    text = ast.unparse(part)
                    if text not in TRUSTED:
                        problems.append(f"{path.name}:{node.lineno}: {text}")
    assert not problems, problems
