"""Untrusted text in and out: one escaping function per output format, secrets, and the safe JSON reader.

Model ids come from an endpoint's /v1/models, outputs from a model, files from colleagues: every writer
passes such text through the function for its format, nothing else.

- HTML: ``html_text`` (element text and attribute values), ``script_json`` (data inside ``<script>``:
  ``<``, ``>``, ``&``, U+2028/9 become ``\\uXXXX``), ``script_body`` (a JavaScript bundle placed inside
  ``<script>``: no ``</script`` or ``<!--`` in any letter case survives).
- Markdown (files and Streamlit): ``md_text`` (literal text on one line: no link, image, HTML, table
  cell, emphasis, math or bare URL can come of it); ``md_code`` (an inline code span); ``md_frame`` (a
  DataFrame whose cells, headers and index labels all pass through ``md_text``, for ``st.table``).
- CSV: ``csv_cell`` / ``csv_row`` / ``csv_frame``: terminal escapes and control characters removed; a cell a
  spreadsheet would run as a formula (``= + - @``, also after leading spaces, or a leading tab / CR) gets a
  leading ``'``.
- Terminal: ``term_text`` (ANSI escapes and control characters removed) and ``TerminalStream``
  (wraps stdout/stderr of the CLI).
- Secrets: ``looks_like_key``, ``check_env_name``, ``check_url``, ``redact`` (the one redaction used
  wherever errors and environments are stored).
- Reading JSON from a file or a model: ``load_json`` (size and nesting checked before parsing,
  NaN/Infinity/overflowing numbers refused, one-line UserError naming the file and the place).
"""
from __future__ import annotations

import html
import json
import math
import re
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from core.errors import (  # noqa: F401  (secrets: defined beside UserError, re-exported here)
    REDACTED, SECRET_PARAMS, UserError, looks_like_key, redact,
)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _jsonable(obj.item())
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as pretty JSON (NaN/inf become null). A bad path is a UserError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_jsonable(obj), indent=2, default=str) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


# ---------------------------------------------------------------- HTML

def html_text(value: Any) -> str:
    """Text for an HTML element or a quoted attribute value."""
    return html.escape(str(value), quote=True)


_SCRIPT_JSON = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_JSON_RE = re.compile("[<>&\u2028\u2029]")


def script_json(obj: Any) -> str:
    """JSON for a ``<script type="application/json">`` element (or a JS expression): no character of it can
    end the element or start an HTML comment, whatever the strings hold (JSON allows these characters only
    inside strings, where the \\u escape keeps their meaning)."""
    text = json.dumps(_jsonable(obj), ensure_ascii=False, default=str)
    return _SCRIPT_JSON_RE.sub(lambda m: _SCRIPT_JSON[m.group(0)], text)


_SCRIPT_BREAK = re.compile(r"<(?=/script|!--)", re.IGNORECASE)


def script_body(js: str) -> str:
    """JavaScript (a vendor bundle) made safe to place inside ``<script>``: ``</script`` and ``<!--`` in any
    letter case become ``\\x3C/script`` / ``\\x3C!--``, which mean the same inside JS strings, regular
    expressions and templates (the only places they can appear in valid code)."""
    return _SCRIPT_BREAK.sub(r"\\x3C", js)


# ---------------------------------------------------------------- Markdown (files and Streamlit)

_MD_ACTIVE = re.compile(r"([\\`*_{}\[\]()#!|<>~@&$^])")
_MD_LINE_START = re.compile(r"^([-+=])|^(\d+)\.")
_BARE_LINK = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)")
WORD_JOINER = "\u2060"


def md_text(value: Any) -> str:
    """Untrusted text (model ids, errors, rubric text, ...) placed in Markdown as literal text on one line.

    Characters that could make a link, an image, HTML, a table cell, emphasis, a Streamlit directive
    (``:red[...]``, ``$math$``) or a list/heading are backslash-escaped; control characters go; a bare URL
    (``http://``, ``www.``) gets an invisible word joiner so no renderer turns it into a link."""
    text = " ".join(term_text(value).split())
    text = _BARE_LINK.sub(WORD_JOINER, text)  # before escaping: the joiner lands after ':' / before '.'
    text = _MD_ACTIVE.sub(r"\\\1", text)
    return _MD_LINE_START.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\.", text)


def md_code(value: Any) -> str:
    """Untrusted text as an inline code span (shown verbatim, one line)."""
    text = " ".join(term_text(value).split())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_frame(df):
    """A DataFrame for a sink that renders every cell, header and index label as Markdown (``st.table`` in
    Streamlit 1.67): each of them through ``md_text``; None stays empty."""
    out = df.map(lambda v: "" if v is None else md_text(v))
    out.columns = [md_text(c) for c in df.columns]
    out.index = [md_text(i) for i in df.index]
    return out


# ---------------------------------------------------------------- CSV

_FORMULA_START = ("=", "+", "-", "@")
# Rows end in CRLF (RFC 4180): the writer then quotes any cell holding a lone CR, which a "\n" terminator
# would leave bare, splitting the row for every reader.
CSV_EOL = "\r\n"


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: terminal escapes and control characters removed (tabs and line breaks kept: the
    writer quotes them), then text a spreadsheet would run as a formula gets a leading ``'``; others as is."""
    if isinstance(value, str) and value:
        value = _CONTROL_CSV.sub("", _ANSI.sub("", value))
        if value and (value[0] in "\t\r" or value.lstrip()[:1] in _FORMULA_START):
            return "'" + value
    return value


def csv_row(values) -> list:
    return [csv_cell(v) for v in values]


def csv_frame(df):
    """A copy of a pandas DataFrame with every text cell (and column name) passed through ``csv_cell``."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = [csv_cell(v) for v in out[col]]
    out.columns = [csv_cell(str(c)) for c in out.columns]
    return out


# ---------------------------------------------------------------- terminal

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[PX^_][^\x1b]*(?:\x1b\\)?|[@-Z\\-_])"
                   r"|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_CSV = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def term_text(value: Any, *, keep_newlines: bool = False) -> str:
    """Text safe to print on a terminal: ANSI escape sequences and control characters (bidi overrides too)
    removed; tabs and newlines become spaces unless ``keep_newlines``."""
    text = _ANSI.sub("", str(value))
    if keep_newlines:
        return _CONTROL.sub("", text)
    return _CONTROL_ONE_LINE.sub(lambda m: " " if m.group(0) in "\t\n\r" else "", text)


class TerminalStream:
    """A text stream that writes through ``term_text(keep_newlines=True)`` (the CLI wraps stdout/stderr)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(term_text(text, keep_newlines=True))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


# ---------------------------------------------------------------- secrets

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEY_HINT = "this looks like a key: put it in an environment variable and give its name"


def check_env_name(name: str, what: str = "the API key variable") -> str:
    """`name` stripped when it is an environment variable NAME; UserError otherwise, never echoing a key."""
    name = (name or "").strip()
    if looks_like_key(name):
        raise UserError(f"{what}: {KEY_HINT} (e.g. --api-key-env OPENAI_API_KEY)")
    if not ENV_NAME_RE.match(name):
        shown = name if len(name) <= 40 else name[:12] + "..."
        raise UserError(f"{what}: {term_text(shown)!r} is not an environment variable name (letters, digits and _, "
                        "not starting with a digit): give the NAME of the variable holding the key, never the key")
    return name


def check_url(url: str, what: str = "endpoint URL") -> str:
    """UserError when `url` carries credentials (user:pass@, ?api-key=, ?key=, ?token=, ?sig=, ...)."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UserError(f"{what} {redact(url)} holds credentials (user:password@): "
                        "put the key in an environment variable and give its name with --api-key-env")
    for key, _ in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() in SECRET_PARAMS:
            raise UserError(f"{what} {redact(url)} holds a credential in its query ({key}=): "
                            "put the key in an environment variable and give its name with --api-key-env")
    return url


# ---------------------------------------------------------------- reading untrusted JSON

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth_error(text: str, max_depth: int) -> tuple[int, int] | None:
    """(line, column) where `text` nests arrays/objects deeper than `max_depth`, or None. No recursion: strings
    are cut out and the brackets left are counted (regular expressions, C speed); the place is looked for only
    when the limit is passed."""
    if text.count("[") + text.count("{") <= max_depth:
        return None
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0) <= max_depth:
        return None
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        tok = m.group(0)
        if tok in "[{":
            depth += 1
            if depth > max_depth:
                line = text.count("\n", 0, m.start()) + 1
                return line, m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        elif tok in "]}":
            depth -= 1
    return None


class JsonProblem(ValueError):
    """Why a text is not acceptable JSON (message without the source)."""


class JsonTooDeep(JsonProblem):
    """Nesting over the limit (the text may be valid JSON, but it is refused)."""


def _no_constant(name: str):
    raise JsonProblem(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonProblem(f"number {text[:20]} is too large")
    return value


def parse_json_strict(text: str, max_depth: int) -> Any:
    """Parse JSON refusing NaN/Infinity, numbers that overflow a float, and nesting deeper than `max_depth`.
    Raises JsonProblem (a ValueError) with a short reason; never RecursionError or OverflowError."""
    where = json_depth_error(text, max_depth)
    if where:
        raise JsonTooDeep(f"line {where[0]}, column {where[1]}: nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except JsonProblem:
        raise
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except (ValueError, RecursionError, OverflowError) as exc:  # e.g. an integer of over 4,300 digits
        raise JsonProblem(" ".join(str(exc).split())[:120] or type(exc).__name__) from exc


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def load_json(source: Path | bytes | str, *, name: str | None = None, what: str = "file",
              max_bytes: int | None = None, max_depth: int | None = None) -> Any:
    """Read untrusted JSON (a Path; or the bytes or text of a file called `name`) whole and safely. UserError in one line naming the file,
    the place and the problem: too large, not UTF-8, empty, not valid JSON, NaN/Infinity, too deep."""
    from core.config import limit, max_file_bytes

    max_bytes = max_file_bytes() if max_bytes is None else max_bytes
    max_depth = limit("SLM_MAX_JSON_DEPTH") if max_depth is None else max_depth
    if isinstance(source, Path):
        label = f"{what} {name or source}"
        try:
            size = source.stat().st_size
            if size > max_bytes:
                raise UserError(f"{label} is too large ({_mb(size)}; the limit is {_mb(max_bytes)}, SLM_MAX_FILE_MB)")
            raw = source.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {label}: {exc.strerror or exc}") from exc
    else:
        label = f"{what} {name or ''}".strip()
        raw = source
    if isinstance(raw, bytes):
        if len(raw) > max_bytes:
            raise UserError(f"{label} is too large ({_mb(len(raw))}; the limit is {_mb(max_bytes)}, SLM_MAX_FILE_MB)")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UserError(f"{label} is not UTF-8 text (byte {exc.start})") from exc
    else:
        text = raw.lstrip("\ufeff")
        if len(text) > max_bytes:
            raise UserError(f"{label} is too large (over {_mb(max_bytes)}, SLM_MAX_FILE_MB)")
    if not text.strip():
        raise UserError(f"{label} is empty")
    try:
        return parse_json_strict(text, max_depth)
    except JsonTooDeep as exc:
        raise UserError(f"{label}: {exc} (SLM_MAX_JSON_DEPTH)") from exc
    except JsonProblem as exc:
        raise UserError(f"{label} is not valid JSON ({exc})") from exc
