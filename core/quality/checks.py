"""Automatic checks: cheap, exact tests of one output. Pure functions; storing is in run_checks."""
from __future__ import annotations

import re

from core.quality.rubrics import compile_check_regex

LIST_ITEM_RE = re.compile(r"^\s*(?:\*\*)?(?:[-*+\u2022]|\d{1,3}[.)])\s+\S")
WORD_RE = re.compile(r"[^\W_]+(?:['\u2019.,:/-][^\W_]+)*")
MARKER_RE = re.compile(r"^\s*(?:\*\*)?(?:[-*+\u2022]|\d{1,3}[.)])\s+", re.MULTILINE)


def word_count(text: str) -> int:
    """Words: runs of letters or digits ("4.2", "4,500", "don't", "12:30" are one word each);
    list markers ("-", "1.") and lone punctuation are not words."""
    return len(WORD_RE.findall(MARKER_RE.sub("", text or "")))


def list_item_count(text: str) -> int:
    return sum(1 for line in (text or "").splitlines() if LIST_ITEM_RE.match(line))


def _strip_fence(text: str) -> str:
    s = (text or "").strip()
    m = re.fullmatch(r"```[A-Za-z0-9_-]*\s*\n(.*?)\n?```", s, flags=re.DOTALL)
    return m.group(1) if m else s


def describe(spec: dict) -> str:
    """A short human label for a check spec."""
    if spec.get("label"):
        return spec["label"]
    kind = spec["kind"]
    if kind == "contains":
        return f"contains {spec['value']!r}"
    if kind == "not_contains":
        return f"does not contain {spec['value']!r}"
    if kind == "regex":
        return f"matches /{spec['pattern']}/{spec.get('flags', '')}"
    if kind == "max_words":
        return f"at most {spec['value']} words"
    if kind == "min_words":
        return f"at least {spec['value']} words"
    if kind == "list_items":
        parts = []
        if "min" in spec:
            parts.append(f">= {spec['min']}")
        if "max" in spec:
            parts.append(f"<= {spec['max']}")
        return f"list items {' and '.join(parts)}"
    if kind == "valid_json":
        return "valid JSON"
    return kind


def run_check(spec: dict, text: str) -> tuple[bool, str]:
    """(passed, detail) of one check on one output."""
    text = text or ""
    kind = spec["kind"]
    if kind in ("contains", "not_contains"):
        needle = spec["value"]
        hay = text if spec.get("case_sensitive") else text.casefold()
        found = (needle if spec.get("case_sensitive") else needle.casefold()) in hay
        if kind == "contains":
            return found, "found" if found else "not found"
        return not found, "found" if found else "absent"
    if kind == "regex":
        try:       # RE2: linear time whatever the pattern (a rubric stored before RE2 may hold one it refuses)
            m = compile_check_regex(spec["pattern"], spec.get("flags", "")).search(text)
        except ValueError as exc:
            return False, f"pattern refused: {str(exc)[:120]}"
        return bool(m), f"matched {m.group(0)[:60]!r}" if m else "no match"
    if kind == "max_words":
        n = word_count(text)
        return n <= spec["value"], f"{n} words"
    if kind == "min_words":
        n = word_count(text)
        return n >= spec["value"], f"{n} words"
    if kind == "list_items":
        n = list_item_count(text)
        ok = ("min" not in spec or n >= spec["min"]) and ("max" not in spec or n <= spec["max"])
        return ok, f"{n} list items"
    if kind == "valid_json":
        from core.config import limit
        from core.output import parse_json_strict
        try:  # strict: NaN/Infinity/overflowing numbers are not JSON; any nesting is measured without recursion
            parse_json_strict(_strip_fence(text), limit("SLM_MAX_OUTPUT_JSON_DEPTH"))
        except ValueError as exc:
            return False, f"not JSON ({str(exc)[:80]})"
        return True, "parses"
    raise ValueError(f"unknown check kind {kind!r}")


def run_checks(run_id: str, rubric_name: str) -> list[dict]:
    """Run the rubric's checks on every scored output of a run; store (replacing) and return the results."""
    from core.quality.outputs import run_outputs
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    rubric = get_rubric(rubric_name)
    results = []
    for out in run_outputs(run_id):
        for key, spec in rubric.checks_for(out["prompt_id"]):
            passed, detail = run_check(spec, out["output_text"])
            results.append({"run_id": run_id, "request_id": out["request_id"], "rubric": rubric.name,
                            "check_key": key, "kind": spec["kind"], "spec": spec, "passed": passed,
                            "detail": detail, "model": out["model"], "prompt_id": out["prompt_id"],
                            "label": describe(spec)})
    store.replace_check_results(run_id, rubric.name, results)
    return results
