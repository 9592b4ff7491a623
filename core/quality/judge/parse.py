"""Strict parsing of the judge's answer: one JSON object, exactly the rubric's criteria, whole numbers inside
each scale, a bounded rationale; anything else is a `JudgeParseError` naming the problem."""
from __future__ import annotations

import json
import re

from core.quality.rubrics import Rubric


class JudgeParseError(ValueError):
    pass


_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)


MAX_ANSWER_CHARS = 100_000


def _no_constant(name: str):
    raise JudgeParseError(f"{name} is not a number a score can be")


def _finite_float(text: str) -> float:
    v = float(text)
    if v != v or v in (float("inf"), float("-inf")):
        raise JudgeParseError(f"{text[:40]} is not a finite number")
    return v


def _json_object(text: str) -> dict:
    """Exactly one JSON object: no NaN/Infinity, no number that overflows, no nesting that exhausts the
    parser. Whatever the text holds ends as JudgeParseError, never another exception."""
    s = (text or "").strip()
    if len(s) > MAX_ANSWER_CHARS:
        raise JudgeParseError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
    m = _FENCE.fullmatch(s)
    if m:  # one code fence around the whole answer is tolerated, nothing else
        s = m.group(1).strip()
    if not s:
        raise JudgeParseError("the answer is empty")
    try:
        obj = json.loads(s, parse_constant=_no_constant, parse_float=_finite_float)
    except JudgeParseError:
        raise
    except json.JSONDecodeError as exc:
        raise JudgeParseError(f"not a single JSON object ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise JudgeParseError("the JSON is nested too deeply") from None
    except (ValueError, OverflowError, MemoryError) as exc:   # e.g. an integer with more than 4300 digits
        raise JudgeParseError(f"not a usable JSON object ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise JudgeParseError("the JSON is not an object")
    return obj


def _rationale(obj: dict) -> str:
    r = obj.get("rationale")
    if not isinstance(r, str):
        raise JudgeParseError('"rationale" must be a string')
    return r.strip()


def parse_pointwise(text: str, rubric: Rubric) -> tuple[dict[str, int], str]:
    """({criterion: score}, rationale) or JudgeParseError with the reason."""
    obj = _json_object(text)
    extra = sorted(set(obj) - {"rationale", "scores"})
    if extra:
        raise JudgeParseError(f"unexpected key {extra[0]!r}")
    scores = obj.get("scores")
    if not isinstance(scores, dict):
        raise JudgeParseError('"scores" must be an object keyed by criterion')
    rationale = _rationale(obj)
    names = rubric.criterion_names
    unknown = sorted(set(scores) - set(names))
    if unknown:
        raise JudgeParseError(f"unknown criterion {unknown[0]!r}")
    missing = [n for n in names if n not in scores]
    if missing:
        raise JudgeParseError(f"missing score for {', '.join(missing)}")
    out = {}
    for c in rubric.criteria:
        v = scores[c.name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
            raise JudgeParseError(f"score for {c.name!r} must be a whole number (got {str(v)[:40]})")
        if not c.scale_min <= v <= c.scale_max:
            raise JudgeParseError(f"score for {c.name!r} is {str(v)[:40]}, outside {c.scale_min}..{c.scale_max}")
        out[c.name] = int(v)
    return out, rationale


def parse_pairwise(text: str) -> tuple[str, str]:
    """("1" | "2" | "tie", rationale) or JudgeParseError."""
    obj = _json_object(text)
    extra = sorted(set(obj) - {"rationale", "winner"})
    if extra:
        raise JudgeParseError(f"unexpected key {extra[0]!r}")
    winner = obj.get("winner")
    if isinstance(winner, int) and not isinstance(winner, bool):
        winner = str(winner)
    if winner not in ("1", "2", "tie"):
        raise JudgeParseError(f'"winner" must be "1", "2" or "tie" (got {str(winner)[:40]!r})')
    return winner, _rationale(obj)
