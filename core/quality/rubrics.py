"""Rubrics: the model, whole-file validation of the JSON form, import and export.

File format (`format` optional, "slm-selector-rubric/1"):

    {
      "name": "meeting_notes",
      "description": "...",
      "prompt_set": "meeting_notes",
      "criteria": [{"name": "coverage", "description": "...", "scale": [1, 5], "weight": 0.4}, ...],
      "checks": [{"kind": "max_words", "value": 250}],          # applied to every prompt
      "prompts": {"m01": {"expected_aspects": ["..."], "reference_answer": "...",
                          "checks": [{"kind": "contains", "value": "Friday"}]}}
    }

Check kinds: contains / not_contains (value: text, case-insensitive unless "case_sensitive": true),
regex (pattern in RE2 syntax: linear time, no backreferences or lookaround; optional "flags": "i", "m", "s";
passes when it matches somewhere),
max_words / min_words (value: integer), list_items (min and/or max: integers; counts lines that
start with "-", "*", "+", "•" or "1." / "1)"), valid_json (the whole output parses as JSON, a
surrounding ``` fence allowed).

A file is validated whole before anything is stored; the first problem is reported with where it is.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import UserError

FORMAT = "slm-selector-rubric/1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CHECK_KINDS = ("contains", "not_contains", "regex", "max_words", "min_words", "list_items", "valid_json")
TOP_KEYS = {"format", "name", "description", "prompt_set", "criteria", "checks", "prompts"}
CRITERION_KEYS = {"name", "description", "scale", "weight"}
PROMPT_KEYS = {"expected_aspects", "reference_answer", "checks", "must_include", "must_not_include", "max_words"}
CHECK_KEYS = {
    "contains": {"kind", "value", "case_sensitive", "label"},
    "not_contains": {"kind", "value", "case_sensitive", "label"},
    "regex": {"kind", "pattern", "flags", "label"},
    "max_words": {"kind", "value", "label"},
    "min_words": {"kind", "value", "label"},
    "list_items": {"kind", "min", "max", "label"},
    "valid_json": {"kind", "label"},
}


class RubricError(UserError):
    """A rubric file or edit that cannot be accepted; the message names where and why."""


@dataclass
class Criterion:
    name: str
    description: str
    scale_min: int = 1
    scale_max: int = 5
    weight: float = 1.0

    def normalise(self, score: float) -> float:
        """Score on the criterion's scale -> 0..1 (scale_min -> 0, scale_max -> 1)."""
        return (float(score) - self.scale_min) / (self.scale_max - self.scale_min)

    def as_json(self) -> dict:
        return {"name": self.name, "description": self.description,
                "scale": [self.scale_min, self.scale_max], "weight": self.weight}


@dataclass
class PromptExpectation:
    prompt_id: str
    expected_aspects: list[str] = field(default_factory=list)
    reference_answer: str | None = None
    checks: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        out: dict[str, Any] = {"expected_aspects": list(self.expected_aspects)}
        if self.reference_answer:
            out["reference_answer"] = self.reference_answer
        if self.checks:
            out["checks"] = [dict(c) for c in self.checks]
        return out


@dataclass
class Rubric:
    name: str
    criteria: list[Criterion]
    description: str = ""
    prompt_set: str | None = None
    checks: list[dict] = field(default_factory=list)          # every prompt
    prompts: dict[str, PromptExpectation] = field(default_factory=dict)
    version: int | None = None        # the stored version (set by the store; not part of the file form)

    def criterion(self, name: str) -> Criterion:
        for c in self.criteria:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def criterion_names(self) -> list[str]:
        return [c.name for c in self.criteria]

    def checks_for(self, prompt_id: str) -> list[tuple[str, dict]]:
        """(check_key, spec) for a prompt: the rubric-wide checks then the prompt's own."""
        out = [(f"*#{i}", c) for i, c in enumerate(self.checks)]
        exp = self.prompts.get(prompt_id)
        if exp:
            out += [(f"{prompt_id}#{i}", c) for i, c in enumerate(exp.checks)]
        return out

    def as_json(self) -> dict:
        out: dict[str, Any] = {"format": FORMAT, "name": self.name, "description": self.description}
        if self.prompt_set:
            out["prompt_set"] = self.prompt_set
        out["criteria"] = [c.as_json() for c in self.criteria]
        out["checks"] = [dict(c) for c in self.checks]
        out["prompts"] = {pid: e.as_json() for pid, e in self.prompts.items()}
        return out


# ---------------------------------------------------------------- validation

def _fail(where: str, why: str) -> None:
    raise RubricError(f"{where}: {why}" if where else why)


def _text(value, where: str, *, required: bool = True, allow_empty: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        _fail(where, "must be text")
    if not allow_empty and not value.strip():
        _fail(where, "must not be empty")
    return value


def _int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
        _fail(where, "must be a whole number")
    return int(value)


def _unknown_keys(obj: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        _fail(where, f"unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def validate_check(spec, where: str) -> dict:
    """A check spec, validated; returns a clean copy."""
    if not isinstance(spec, dict):
        _fail(where, "a check must be an object with a 'kind'")
    kind = spec.get("kind")
    if kind not in CHECK_KINDS:
        _fail(f"{where}.kind", f"must be one of {', '.join(CHECK_KINDS)} (got {kind!r})")
    _unknown_keys(spec, CHECK_KEYS[kind], where)
    out: dict[str, Any] = {"kind": kind}
    if "label" in spec:
        out["label"] = _text(spec["label"], f"{where}.label")
    if kind in ("contains", "not_contains"):
        out["value"] = _text(spec.get("value"), f"{where}.value")
        if "case_sensitive" in spec:
            if not isinstance(spec["case_sensitive"], bool):
                _fail(f"{where}.case_sensitive", "must be true or false")
            out["case_sensitive"] = spec["case_sensitive"]
    elif kind == "regex":
        pattern = _text(spec.get("pattern"), f"{where}.pattern")
        flags = spec.get("flags", "")
        if not isinstance(flags, str) or set(flags) - set("ims"):
            _fail(f"{where}.flags", "must be made of the letters i, m, s")
        try:
            compile_check_regex(pattern, flags)
        except ValueError as exc:
            _fail(f"{where}.pattern", str(exc))
        out["pattern"] = pattern
        if flags:
            out["flags"] = flags
    elif kind in ("max_words", "min_words"):
        n = _int(spec.get("value"), f"{where}.value")
        if n < 0:
            _fail(f"{where}.value", "must be 0 or more")
        out["value"] = n
    elif kind == "list_items":
        if "min" not in spec and "max" not in spec:
            _fail(where, "list_items needs 'min' and/or 'max'")
        for k in ("min", "max"):
            if k in spec:
                out[k] = _int(spec[k], f"{where}.{k}")
                if out[k] < 0:
                    _fail(f"{where}.{k}", "must be 0 or more")
        if "min" in out and "max" in out and out["min"] > out["max"]:
            _fail(where, "min is greater than max")
    return out


MAX_PATTERN_CHARS = 1000


@functools.lru_cache(maxsize=256)
def compile_check_regex(pattern: str, flags: str = ""):
    """A regex check's pattern compiled by RE2 (google-re2): matching takes time linear in the text, so no
    pattern can hang a judge run or a page (``^(a+)+$`` backtracks for seconds in Python's ``re``). ValueError
    with one line when the pattern is not valid or uses what RE2 does not support (backreferences, lookahead
    and lookbehind, possessive quantifiers...): refused when the rubric is imported or written."""
    import re2

    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"a pattern of {len(pattern)} characters (the limit is {MAX_PATTERN_CHARS})")
    prefix = f"(?{''.join(sorted(set(flags)))})" if flags else ""
    options = re2.Options()
    options.max_mem = 8 << 20            # a pattern whose automaton would be larger is refused, not built
    options.log_errors = False           # the refusal is ours to tell, not a line on stderr
    try:
        return re2.compile(prefix + pattern, options)
    except Exception as exc:            # re2.error; re2 names what it does not support
        arg = exc.args[0] if exc.args else exc
        why = " ".join((arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)).split())[:160]
        raise ValueError(f"not a valid regular expression for RE2 ({why}); checks use RE2, which runs in linear "
                         "time: no backreferences (\\1), lookahead/lookbehind ((?=, (?!, (?<=, (?<!) or "
                         "possessive quantifiers") from None


def _checks(value, where: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(where, "must be a list of checks")
    return [validate_check(c, f"{where}[{i}]") for i, c in enumerate(value)]


def _aspects(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        _fail(where, "must be a list of text")
    return [_text(v, f"{where}[{i}]") for i, v in enumerate(value)]


def rubric_from_json(data) -> Rubric:
    """Validate a whole rubric document; raise RubricError naming the first problem."""
    if not isinstance(data, dict):
        _fail("", "a rubric file must be a JSON object")
    _unknown_keys(data, TOP_KEYS, "rubric")
    if "format" in data and data["format"] != FORMAT:
        _fail("format", f"must be {FORMAT!r} (got {data['format']!r})")
    name = _text(data.get("name"), "name")
    if not NAME_RE.match(name):
        _fail("name", "use letters, digits, '_', '-' or '.', at most 64 characters")
    description = _text(data.get("description", ""), "description", allow_empty=True)
    prompt_set = _text(data.get("prompt_set"), "prompt_set", required=False)

    raw_criteria = data.get("criteria")
    if not isinstance(raw_criteria, list) or not raw_criteria:
        _fail("criteria", "must be a non-empty list")
    criteria: list[Criterion] = []
    seen: set[str] = set()
    for i, c in enumerate(raw_criteria):
        where = f"criteria[{i}]"
        if not isinstance(c, dict):
            _fail(where, "must be an object")
        _unknown_keys(c, CRITERION_KEYS, where)
        cname = _text(c.get("name"), f"{where}.name")
        if not NAME_RE.match(cname):
            _fail(f"{where}.name", "use letters, digits, '_', '-' or '.'")
        if cname in seen:
            _fail(f"{where}.name", f"duplicate criterion {cname!r}")
        if cname == "overall":
            _fail(f"{where}.name", "'overall' is reserved")
        seen.add(cname)
        desc = _text(c.get("description"), f"{where}.description")
        scale = c.get("scale", [1, 5])
        if not isinstance(scale, list) or len(scale) != 2:
            _fail(f"{where}.scale", "must be [min, max], e.g. [1, 5]")
        lo, hi = _int(scale[0], f"{where}.scale[0]"), _int(scale[1], f"{where}.scale[1]")
        if hi <= lo:
            _fail(f"{where}.scale", "max must be greater than min")
        if hi - lo > 100:
            _fail(f"{where}.scale", "at most 101 points")
        weight = c.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (weight > 0) or weight != weight \
                or weight == float("inf"):
            _fail(f"{where}.weight", "must be a positive number")
        criteria.append(Criterion(cname, desc, lo, hi, float(weight)))

    checks = _checks(data.get("checks"), "checks")
    prompts_raw = data.get("prompts", {})
    if not isinstance(prompts_raw, dict):
        _fail("prompts", "must be an object keyed by prompt id")
    prompts: dict[str, PromptExpectation] = {}
    for pid, p in prompts_raw.items():
        where = f"prompts[{pid!r}]"
        if not pid.strip() or pid == "*":
            _fail(where, "prompt id must be non-empty text and not '*'")
        if not isinstance(p, dict):
            _fail(where, "must be an object")
        _unknown_keys(p, PROMPT_KEYS, where)
        aspects = _aspects(p.get("expected_aspects"), f"{where}.expected_aspects")
        ref = _text(p.get("reference_answer"), f"{where}.reference_answer", required=False, allow_empty=True)
        pchecks = _checks(p.get("checks"), f"{where}.checks")
        # Shorthands (as in meeting_notes_expectations.json) become checks.
        for i, v in enumerate(_aspects(p.get("must_include"), f"{where}.must_include")):
            pchecks.append({"kind": "contains", "value": v})
        for i, v in enumerate(_aspects(p.get("must_not_include"), f"{where}.must_not_include")):
            pchecks.append({"kind": "not_contains", "value": v})
        if p.get("max_words") is not None:
            pchecks.append(validate_check({"kind": "max_words", "value": p["max_words"]}, f"{where}.max_words"))
        prompts[pid] = PromptExpectation(pid, aspects, ref or None, pchecks)
    return Rubric(name=name, criteria=criteria, description=description or "", prompt_set=prompt_set,
                  checks=checks, prompts=prompts)


def parse_rubric_text(text: str | bytes, source: str = "rubric file") -> Rubric:
    """A rubric from a file's content. Size (SLM_MAX_FILE_MB), nesting (SLM_MAX_JSON_DEPTH), NaN/Infinity and
    types are checked before anything else; RubricError names the file, the place and the problem."""
    from core.output import load_json
    try:
        data = load_json(text, name=source, what="rubric file")
    except RubricError:
        raise
    except UserError as exc:
        raise RubricError(exc.one_line()) from exc
    try:
        return rubric_from_json(data)
    except RubricError as exc:
        raise RubricError(f"{source}: {exc}") from exc


def load_rubric_file(path: str | Path) -> Rubric:
    from core.config import max_file_bytes
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_file_bytes():
            raise RubricError(f"rubric file {path} is too large ({size / 1024 / 1024:.1f} MB; the limit is "
                              f"{max_file_bytes() / 1024 / 1024:.1f} MB, SLM_MAX_FILE_MB)")
        raw = path.read_bytes()
    except OSError as exc:
        raise RubricError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    return parse_rubric_text(raw, str(path))


# ---------------------------------------------------------------- store face

def import_rubric(source: str | Path | dict | Rubric, *, replace: bool = True) -> Rubric:
    """Validate then store a rubric (file path, parsed dict or Rubric) in one transaction."""
    from core.store import quality as store

    if isinstance(source, Rubric):
        rubric = rubric_from_json(source.as_json())
    elif isinstance(source, dict):
        rubric = rubric_from_json(source)
    else:
        rubric = load_rubric_file(source)
    if not replace and store.rubric_exists(rubric.name):
        raise RubricError(f"rubric {rubric.name!r} already exists")
    version, new = store.save_rubric(rubric)
    rubric.version = version
    rubric.new_version = new   # type: ignore[attr-defined]  (what the CLI/page says: new version or unchanged)
    return rubric


def get_rubric(name: str) -> Rubric:
    from core.store import quality as store

    data = store.load_rubric(name)
    if data is None and ensure_default_rubrics():  # first use: the shipped rubrics
        data = store.load_rubric(name)
    if data is None:
        known = store.list_rubric_names()
        hint = f" (known: {', '.join(known)})" if known else " (none stored: import one with `python -m core rubric import FILE`)"
        raise UserError(f"unknown rubric {name!r}{hint}")
    version = data.pop("_version", None)
    rubric = rubric_from_json(data)
    if version is None:   # stored before versions existed: this content becomes version 1
        version, _ = store.save_rubric(rubric)
    rubric.version = version
    return rubric


def export_rubric(name: str, out: str | Path) -> Path:
    from core.output import write_json

    return write_json(out, get_rubric(name).as_json())


def list_rubrics() -> list[str]:
    from core.store import quality as store

    return store.list_rubric_names()


def shipped_rubric_files() -> list[Path]:
    from core.config import RUBRICS_DIR

    return sorted(RUBRICS_DIR.glob("*.json")) if RUBRICS_DIR.is_dir() else []


_defaults_ensured: set[str] = set()


def ensure_default_rubrics() -> list[str]:
    """Import the shipped rubrics (data/rubrics/*.json) that are not stored yet, once per process and
    database (pages call this on every rerun). Returns names imported."""
    from core.config import db_path
    from core.store import quality as store

    key = str(db_path())
    if key in _defaults_ensured:
        return []
    done = []
    for f in shipped_rubric_files():
        try:
            rubric = load_rubric_file(f)
        except RubricError:  # a broken shipped file is caught by tests/test_quality_rubrics.py
            continue
        if not store.rubric_exists(rubric.name):
            store.save_rubric(rubric)
            done.append(rubric.name)
    _defaults_ensured.add(key)
    return done
