"""The escaping layer (core.output), property-based: whatever text comes in, each writer's output read back
by a real reader (html.parser, csv, markdown-it) shows that text as text; the JSON reader never raises
anything but its one-line error, at any depth or size of number; terminal text holds no control character."""
import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from markdown_it import MarkdownIt

from core.errors import UserError
from core.output import (WORD_JOINER, JsonProblem, csv_cell, csv_row, html_text, load_json, looks_like_key, md_code,
                         md_text, parse_json_strict, redact, script_body, script_json, term_text)

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOSTILE = "m</SCRIPT><img src=x onerror=alert(1)><!--"
META = ["<", ">", "&", "\"", "'", "`", "*", "_", "[", "]", "(", ")", "!", "|", "#", "\\", "~", "$", ":", "@",
        "=", "+", "-", "\t", "\r", "\n", "\x1b[31m", "\x07", "\u202e", "\u2028", "\u2029", "</script", "</SCRIPT",
        "<!--", "-->", "![j](http://evil/x.png)", "http://", "www.", "=HYPERLINK(", "  =1+2", "1. ", "- ", "> "]
# Arbitrary text, weighted towards the characters each format gives meaning to.
hostile_text = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(META)), max_size=12).map("".join)


# ------------------------------------------------------------------ HTML

class _Collect(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.script = [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self.tags.append("/" + tag)
        self._in_script = False

    def handle_data(self, data):
        (self.script if self._in_script else self.text).append(data)

    def handle_comment(self, data):
        self.tags.append("!--")


@FAST
@given(hostile_text)
def test_html_text_reads_back_as_the_same_text(s):
    p = _Collect()
    p.feed(f"<p title=\"{html_text(s)}\">{html_text(s)}</p>")
    p.close()
    assert p.tags == ["p", "/p"]
    assert "".join(p.text) == s


@FAST
@given(hostile_text)
def test_script_json_cannot_leave_its_element_and_parses_back(s):
    obj = {"name": s, "list": [s, {"k": s}]}
    body = script_json(obj)
    assert not re.search(r"</script|<!--|[<>&\u2028\u2029]", body, re.I)
    assert json.loads(body) == obj
    p = _Collect()
    p.feed(f"<script type=\"application/json\">{body}</script><p>after</p>")
    p.close()
    assert p.tags == ["script", "/script", "p", "/p"]


@FAST
@given(hostile_text)
def test_script_body_never_ends_the_script(s):
    js = f"const a = {json.dumps(s)}; const b = `{s.replace('`', '')}`;"
    out = script_body(js)
    assert not re.search(r"</script|<!--", out, re.I)
    p = _Collect()
    p.feed(f"<script>{out}</script><p>after</p>")
    p.close()
    assert p.tags == ["script", "/script", "p", "/p"]


# ------------------------------------------------------------------ Markdown

_MD = MarkdownIt("commonmark").enable("table").enable("strikethrough")


def _inline_tokens(rendered_tokens):
    for t in rendered_tokens:
        yield t
        yield from _inline_tokens(t.children or [])


def _md_shows_text(markdown: str) -> tuple[set[str], str]:
    """Token types and the plain text markdown-it finds in `markdown`."""
    tokens = list(_inline_tokens(_MD.parse(markdown)))
    types = {t.type for t in tokens}
    text = "".join(t.content for t in tokens if t.type in ("text", "code_inline"))
    return types, text


ALLOWED = {"paragraph_open", "paragraph_close", "inline", "text", "softbreak"}


@FAST
@given(hostile_text)
def test_md_text_renders_as_the_same_text_without_any_construct(s):
    out = md_text(s)
    types, text = _md_shows_text(out)
    assert types <= ALLOWED, (s, out, types)
    assert text.replace(WORD_JOINER, "") == " ".join(term_text(s).split())
    # as a table cell too: no extra cells
    types, _ = _md_shows_text(f"| a |\n|---|\n| {out} |")
    assert "th_open" in types and {t for t in types if t.startswith("td")} <= {"td_open", "td_close"}


@FAST
@given(hostile_text)
def test_md_code_shows_the_text_verbatim(s):
    types, text = _md_shows_text(md_code(s))
    flat = " ".join(term_text(s).split())
    assert types <= ALLOWED | {"code_inline"}
    if flat.strip():
        assert text.strip() == flat.strip()


def test_md_text_issue_cases():
    out = md_text("![j](http://evil/x.png)")
    types, text = _md_shows_text(out)
    assert "image" not in types and "link_open" not in types
    assert text.replace(WORD_JOINER, "") == "![j](http://evil/x.png)"
    assert "http://" not in out and "://" in out.replace(WORD_JOINER, "")   # no bare URL for GFM autolinks
    assert "www." not in md_text("see www.evil.example")
    assert md_text("- item").startswith("\\-") and md_text("3. x").startswith("3\\.")
    assert md_text(":red[alert] $x$") == ":red\\[alert\\] \\$x\\$"   # no Streamlit colour or math


# ------------------------------------------------------------------ CSV

@FAST
@given(st.lists(hostile_text, min_size=1, max_size=5))
def test_csv_cells_read_back_and_never_start_a_formula(values):
    buf = io.StringIO()
    csv.writer(buf).writerow(csv_row(values))
    back = next(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert len(back) == len(values)
    for original, cell in zip(values, back):
        assert not any(ord(c) < 0x20 and c not in "\t\n\r" or 0x7F <= ord(c) <= 0x9F for c in cell)  # no escapes
        if not any(ord(c) < 0x20 and c not in "\t\n\r" or 0x7F <= ord(c) <= 0x9F or c in "\u200e\u200f"
                   or "\u202a" <= c <= "\u202e" or "\u2066" <= c <= "\u2069" for c in original):
            assert cell in (original, "'" + original)
        assert not (cell[:1] in ("\t", "\r") or cell.lstrip()[:1] in ("=", "+", "-", "@"))


def test_csv_cell_cases():
    assert csv_cell("=1+2-model") == "'=1+2-model"
    assert csv_cell('=HYPERLINK("http://x")') == "'=HYPERLINK(\"http://x\")"
    assert csv_cell("  @SUM(A1)") == "'  @SUM(A1)"
    assert csv_cell("- item") == "'- item" and csv_cell("\tx") == "'\tx" and csv_cell("\rx") == "'\rx"
    assert csv_cell("plain") == "plain" and csv_cell(-3.5) == -3.5 and csv_cell(None) is None


# ------------------------------------------------------------------ terminal

@FAST
@given(hostile_text)
def test_term_text_holds_no_control_character(s):
    for keep in (False, True):
        out = term_text(s, keep_newlines=keep)
        allowed = "\n\t" if keep else ""
        assert not any((ord(c) < 32 and c not in allowed) or 0x7f <= ord(c) <= 0x9f for c in out)
        assert "\u202e" not in out


def test_term_text_strips_ansi_sequences():
    assert term_text("a\x1b[31mred\x1b[0m\x1b]0;title\x07b") == "aredb"
    assert term_text("line1\nline2\ttab") == "line1 line2 tab"


# ------------------------------------------------------------------ secrets

KEYS = ["sk-proj-Abc123Def456Ghi789Jkl012", "sk-abcdefghijklmnop1234", "Xk9vQ2mP7rT4wZ8nB3cF6hJ1",
        "0123456789abcdef0123456789abcdef", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcdefghijklmnop", "AKIAIOSFODNN7EXAMPLE"]
NAMES = ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY_2024", "MY_KEY", "my_key_2", "_X", "HF_TOKEN"]


@pytest.mark.parametrize("key", KEYS)
def test_keys_are_key_shaped_and_redacted(key):
    assert looks_like_key(key)
    out = redact(f"call failed (HTTP 401) for key {key}: see docs")
    assert key not in out and "***" in out and out.startswith("call failed (HTTP 401)")


@pytest.mark.parametrize("name", NAMES)
def test_names_are_not_key_shaped(name):
    assert not looks_like_key(name)


def test_redact_url_credentials_and_leaves_names_and_hashes():
    text = ("GET https://bob:hunter2@api.example/v1?api-key=abc&x=1&sig=zz failed; "
            "model SmolLM2-135M-Instruct-Q4_K_M-GGUF, prompt set " + "ab12" * 16)
    out = redact(text)
    assert "hunter2" not in out and "bob" not in out and "api-key=***" in out and "sig=***" in out and "x=1" in out
    assert "SmolLM2-135M-Instruct-Q4_K_M-GGUF" in out and "ab12" * 16 in out
    path = "cannot read /home/User/Projects2024/Models3B/x.json: no such file"
    assert redact(path) == path
    assert redact({"endpoint": "http://u:p@h/v1", "n": 3, "l": ["Bearer abcdefghijk123"]}) == \
        {"endpoint": "http://***@h/v1", "n": 3, "l": ["Bearer ***"]}


# ------------------------------------------------------------------ JSON reader

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=20)


@FAST
@given(json_values)
def test_parse_json_strict_reads_what_json_writes(value):
    assert parse_json_strict(json.dumps(value), 64) == value


@FAST
@given(st.one_of(hostile_text, json_values.map(json.dumps), st.sampled_from([
    "NaN", "[Infinity]", "-Infinity", "1e400", "[" * 5000, "{\"a\":" * 3000, "1" * 5000, "[1e999999]", "\"\\ud800\"",
    "[" * 64 + "]" * 64, "[" * 65 + "]" * 65, "[1, NaN]", "{\"a\": -Infinity}", "[1e308, 1e309]", "[1]x"])))
def test_parse_json_strict_never_raises_anything_else(text):
    """Either the value a plain JSON reader gives (when it is finite and at most 64 deep) or JsonProblem saying why."""
    want = _reference(text, 64)
    try:
        got = parse_json_strict(text, 64)
    except JsonProblem as exc:
        assert isinstance(want, str), f"refused valid JSON {text[:60]!r}: {exc}"
        reason = str(exc)
        assert reason and "\n" not in reason
        if want == "deep":
            assert "nested deeper than 64 levels" in reason
        elif want == "not finite":
            assert "is not a number" in reason or "too large" in reason, reason
        return
    assert not isinstance(want, str), f"accepted {text[:60]!r}, which is {want}"
    assert got == want[0]


def _reference(text: str, max_depth: int):
    """(value,) from Python's own reader, or why the strict reader must refuse: "invalid", "deep", "not finite"."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "invalid"
    depth, stack, finite = 0, [(value, 1)], True
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            depth = max(depth, d)
            stack += [(c, d + 1) for c in (v.values() if isinstance(v, dict) else v)]
        elif isinstance(v, float) and not (v == v and abs(v) != float("inf")):
            finite = False
    if depth > max_depth:
        return "deep"
    return (value,) if finite else "not finite"


@pytest.mark.parametrize("text,why", [
    ("[" * 5000 + "]" * 5000, "nested deeper than 64 levels"), ("[NaN]", "NaN is not a number"),
    ("{\"x\": Infinity}", "Infinity is not a number"), ("[1e400]", "too large"), ("[1,", "line 1, column 4")])
def test_load_json_names_the_file_the_place_and_the_problem(text, why):
    with pytest.raises(UserError, match=re.escape(why)) as err:
        load_json(text, name="p.json", what="prompt file")
    assert "prompt file p.json" in str(err.value) and "\n" not in err.value.one_line()


def test_load_json_size_limit_from_the_environment(tmp_path, monkeypatch):
    f = tmp_path / "big.json"
    f.write_text(json.dumps(["x" * 1000] * 1100))   # about 1.1 MB
    monkeypatch.setenv("SLM_MAX_FILE_MB", "1")
    with pytest.raises(UserError, match=r"big.json is too large \(1.1 MB; the limit is 1.0 MB, SLM_MAX_FILE_MB\)"):
        load_json(f)
    monkeypatch.setenv("SLM_MAX_FILE_MB", "2")
    assert len(load_json(f)) == 1100
