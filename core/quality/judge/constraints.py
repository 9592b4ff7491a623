"""Constrained decoding for the judge's answer: a JSON schema for engines that take one, a Lark grammar for
those that take a grammar (`judge_constraint` picks per backend), and the shape the prompt asks for."""
from __future__ import annotations

import json

from core.quality.rubrics import Rubric


def pointwise_shape(rubric: Rubric) -> str:
    scores = ", ".join(f'"{c.name}": <whole number {c.scale_min}-{c.scale_max}>' for c in rubric.criteria)
    return '{"rationale": "<two or three sentences>", "scores": {' + scores + "}}"


MAX_RATIONALE_CHARS = 400      # the grammar/schema bound on the free-text rationale


def pointwise_schema(rubric: Rubric, *, bounded: bool = False) -> dict:
    """The reply object as a JSON schema: fixed keys, each score one of its scale's whole numbers.

    ``bounded`` adds a maxLength on the rationale (llama.cpp turns it into grammar; OpenAI's strict
    mode may refuse the keyword, so it is left off there)."""
    rationale: dict = {"type": "string"}
    if bounded:
        rationale["maxLength"] = MAX_RATIONALE_CHARS
    return {
        "type": "object",
        "properties": {
            "rationale": rationale,
            "scores": {
                "type": "object",
                "properties": {c.name: {"type": "integer", "enum": list(range(c.scale_min, c.scale_max + 1))}
                               for c in rubric.criteria},
                "required": rubric.criterion_names,
                "additionalProperties": False,
            },
        },
        "required": ["rationale", "scores"],
        "additionalProperties": False,
    }


def _lark_literal(text: str) -> str:
    """A Lark string literal that matches ``text`` exactly."""
    return json.dumps(text)   # JSON string escaping is Lark's: \" \\ \n \uXXXX


# The rationale: printable text without quotes, backslashes or control characters, so it is always a
# valid JSON string, and bounded so a rambling model still closes the object.
_RATIONALE_TERMINAL = r'RATIONALE: /[^"\\\x00-\x1f]{0,' + str(MAX_RATIONALE_CHARS) + r'}/'


def pointwise_grammar(rubric: Rubric) -> str:
    """The reply object as a Lark grammar (Foundry Local's structured output): the exact keys in
    order, each score one of its whole numbers, a bounded rationale."""
    parts = ['"{\\"rationale\\": \\"" RATIONALE "\\", \\"scores\\": {"']
    lines = []
    for i, c in enumerate(rubric.criteria):
        key = json.dumps(c.name)   # the key as it appears in JSON
        lead = ("" if i == 0 else ", ") + key + ": "
        parts.append(_lark_literal(lead))
        parts.append(f"s{i}")
        lines.append(f"s{i}: " + " | ".join(_lark_literal(str(v)) for v in range(c.scale_min, c.scale_max + 1)))
    parts.append(_lark_literal("}}"))
    return "\n".join(["start: " + " ".join(parts), *lines, _RATIONALE_TERMINAL]) + "\n"


PAIRWISE_SHAPE = '{"rationale": "<two or three sentences>", "winner": "1" or "2" or "tie"}'
PAIRWISE_SCHEMA = {
    "type": "object",
    "properties": {"rationale": {"type": "string"}, "winner": {"type": "string", "enum": ["1", "2", "tie"]}},
    "required": ["rationale", "winner"],
    "additionalProperties": False,
}
PAIRWISE_GRAMMAR = ("start: " + _lark_literal('{"rationale": "') + " RATIONALE "
                    + _lark_literal('", "winner": "') + " winner " + _lark_literal('"}') + "\n"
                    + 'winner: "1" | "2" | "tie"\n' + _RATIONALE_TERMINAL + "\n")


def judge_constraint(backend: str, schema: dict, grammar: str) -> tuple[dict | None, str | None]:
    """Which of the judge's two constraints a backend takes: (json_schema, None) for HTTP engines, (None,
    grammar) for Foundry Local; chat_once then writes it in the engine's own form (engines.engine_constraint)."""
    return (None, grammar) if backend == "foundry" else (schema, None)

