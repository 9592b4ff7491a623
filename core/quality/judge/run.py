"""Calling the judge and a judge run: the judge model (`JudgeModel`), one bounded-retry call (`ask`), and
`run_judge` over a run's outputs, pointwise or pairwise in both orders (two different verdicts make the pair
"inconsistent": position bias). Temperature 0, fixed seed; an answer that never parses is a failed judgement
with its raw text, never a default score."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from core.catalog.families import same_family_warnings
from core.errors import UserError
from core.quality.judge.prompts import (
    PAIRWISE_VERSION, POINTWISE_VERSION, RETRY_MESSAGE, TEMPLATES, pairwise_messages, pointwise_messages,
)
from core.quality.judge.constraints import (
    PAIRWISE_GRAMMAR, PAIRWISE_SCHEMA, judge_constraint, pointwise_grammar, pointwise_schema,
)
from core.quality.judge.parse import JudgeParseError, parse_pairwise, parse_pointwise


DEFAULT_RETRIES = 2           # extra attempts after an unparseable answer (3 attempts in all)
DEFAULT_MAX_TOKENS = 512

# what the judge run's settings record as its structured output, per backend (shown with the judge run)
STRUCTURED_OUTPUT_LABEL = {"llamacpp": "response_format json_object + schema", "openai": "response_format json_schema",
                           "foundry": "lark_grammar (chat client)"}


@dataclass
class JudgeModel:
    model: str
    backend: str = "foundry"          # foundry | openai | llamacpp
    endpoint: str | None = None
    api_key_env: str | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    timeout: float = 180.0
    seed: int = 0

    def settings(self, retries: int) -> dict:
        return {"temperature": 0.0, "max_tokens": self.max_tokens, "seed": self.seed, "retries": retries,
                "timeout": self.timeout, "structured_output": STRUCTURED_OUTPUT_LABEL.get(self.backend)}


@dataclass
class Attempted:
    ok: bool
    value: object = None              # parsed value when ok
    raw: str | None = None            # last answer
    raws: list[str] = field(default_factory=list)
    attempts: int = 0
    error: str | None = None
    constrained: bool | None = None   # the last answer was decoded under the schema/grammar


def ask(judge: JudgeModel, messages: list[dict], parse: Callable[[str], object], schema: dict,
        retries: int = DEFAULT_RETRIES, chat=None, grammar: str | None = None) -> Attempted:
    """Call the judge; parse strictly; on an unparseable answer retry (bounded) with the reason.

    Structured output in the engine's form: the schema to HTTP engines, the Lark grammar to Foundry
    Local. Nothing the answer holds can raise out of here: it ends as a failed attempt with its text."""
    if chat is None:
        from core.engines import chat_once as chat
    json_schema, grammar = judge_constraint(judge.backend, schema, grammar) if grammar is not None else (schema, None)
    extra = {"grammar": grammar} if grammar is not None else {}
    convo = list(messages)
    raws: list[str] = []
    reason = None
    constrained = None
    for attempt in range(1, retries + 2):
        try:
            res = chat(judge.backend, judge.model, convo, endpoint=judge.endpoint, api_key_env=judge.api_key_env,
                       temperature=0.0, max_tokens=judge.max_tokens, seed=judge.seed, json_schema=json_schema,
                       timeout=judge.timeout, **extra)
        except UserError as exc:  # transport / engine failure: recorded, not retried
            return Attempted(False, None, raws[-1] if raws else None, raws, attempt,
                             f"judge call failed: {exc.one_line()}", constrained)
        text = res.text if isinstance(getattr(res, "text", None), str) else ""
        constrained = getattr(res, "constrained", None)
        raws.append(text)
        try:
            return Attempted(True, parse(text), text, raws, attempt, None, constrained)
        except JudgeParseError as exc:
            reason = str(exc)
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
            reason = f"unusable answer ({type(exc).__name__})"
        convo = convo + [{"role": "assistant", "content": text},
                         {"role": "user", "content": RETRY_MESSAGE.format(reason=reason)}]
    return Attempted(False, None, raws[-1] if raws else None, raws, retries + 1,
                     f"unparseable answer after {retries + 1} attempts: {reason}", constrained)


# ------------------------------------------------------------------ a judge run

def resolve_judge(model: str, *, endpoint: str | None = None, api_key_env: str | None = None,
                  backend: str | None = None) -> JudgeModel:
    """With an endpoint, MODEL is served there; otherwise it is a Foundry Local model (or llamacpp when asked)."""
    if endpoint:
        from core.output import check_env_name, check_url
        check_url(endpoint)                               # no credentials inside the URL
        api_key_env = check_env_name(api_key_env) if api_key_env else None   # a key given as the name: refused
        return JudgeModel(model, "openai", endpoint.rstrip("/"), api_key_env)
    if backend and backend not in ("foundry", "llamacpp", "openai"):
        raise UserError(f"unknown backend {backend!r}")
    if backend == "openai":
        raise UserError("an endpoint judge needs --endpoint URL")
    return JudgeModel(model, backend or "foundry")


def run_judge(run_id: str, rubric_name: str, judge: JudgeModel, *, pairwise: bool = False,
              retries: int = DEFAULT_RETRIES, progress: Callable[[int, int, str], None] | None = None,
              chat=None, cancel: threading.Event | None = None) -> dict:
    """Judge every scored output of a run (pointwise) or every pair per prompt (pairwise, both orders).

    Returns the CLI's JSON document: {"run_id", "judge": {...}, "scores": [...], "failed": N,
    "warnings": [...], "judge_run_id", "mode"} (+ "pairwise": [...] in pairwise mode).
    "failed" counts failed judgements (one per output, or one per pair and order).
    Setting `cancel` stops before the next judge call: what was judged is kept, the judge run is
    stored 'interrupted' with why ("status" and "note" in the document; "total" is the planned calls).
    """
    from core.quality.checks import run_checks
    from core.quality.outputs import run_outputs
    from core.quality.rubrics import get_rubric
    from core.store import quality as store

    rubric = get_rubric(rubric_name)
    outputs = run_outputs(run_id)
    if not outputs:
        raise UserError(f"run {run_id} has no successful outputs to judge")
    version = PAIRWISE_VERSION if pairwise else POINTWISE_VERSION
    kind, text = TEMPLATES[version]
    store.ensure_template(version, kind, text)
    warnings = same_family_warnings(judge.model, sorted({o["model_id"] for o in outputs}))
    run_pids = {o["prompt_id"] for o in outputs}
    if rubric.prompts and not run_pids & set(rubric.prompts):
        warnings.append(f"rubric {rubric.name} has no expectations for any prompt of run {run_id}: "
                        f"is it the rubric for this prompt set?")
    run_checks(run_id, rubric.name)  # cheap, exact, stored beside the judge's scores
    judge_run_id = store.create_judge_run(
        run_id=run_id, rubric=rubric.name, judge_model=judge.model, judge_backend=judge.backend,
        judge_endpoint=judge.endpoint, mode="pairwise" if pairwise else "pointwise", template_version=version,
        settings=judge.settings(retries), warnings=warnings, rubric_version=rubric.version)
    doc = {"run_id": run_id, "judge": {"model": judge.model, "backend": judge.backend, "template_version": version},
           "scores": [], "failed": 0, "warnings": warnings, "judge_run_id": judge_run_id,
           "mode": "pairwise" if pairwise else "pointwise", "rubric": rubric.name,
           "rubric_version": rubric.version, "judged": 0, "constrained": 0}
    doc["total"] = _planned_calls(outputs, pairwise)
    status, note = "interrupted", "stopped by an error before it finished"
    try:
        if pairwise:
            doc["pairwise"] = _run_pairwise(judge_run_id, run_id, rubric, outputs, judge, retries, progress, chat, doc,
                                            cancel)
        else:
            _run_pointwise(judge_run_id, run_id, rubric, outputs, judge, retries, progress, chat, doc, cancel)
        if doc["judged"] < doc["total"]:   # only a cancel stops the loops early
            status, note = "interrupted", f"cancelled after {doc['judged']} of {doc['total']} judge calls"
        else:
            status, note = "completed", None
    finally:
        doc["status"], doc["note"] = status, note
        store.finish_judge_run(judge_run_id, status, note)
    return doc


def _planned_calls(outputs: list[dict], pairwise: bool) -> int:
    """Judge calls a run makes when nothing stops it: one per output, or two per pair of outputs of a prompt."""
    if not pairwise:
        return len(outputs)
    per: dict[str, int] = {}
    for o in outputs:
        per[o["prompt_id"]] = per.get(o["prompt_id"], 0) + 1
    return sum(k * (k - 1) for k in per.values())


def _run_pointwise(judge_run_id, run_id, rubric, outputs, judge, retries, progress, chat, doc, cancel=None) -> None:
    from core.store import quality as store

    schema = pointwise_schema(rubric, bounded=judge.backend == "llamacpp")
    grammar = pointwise_grammar(rubric)
    for i, out in enumerate(outputs):
        if progress:
            progress(i, len(outputs), f"{out['prompt_id']} / candidate {i + 1}")
        if cancel is not None and cancel.is_set():
            return
        messages = pointwise_messages(rubric, out["prompt_id"], out["prompt_text"], out["output_text"])
        res = ask(judge, messages, lambda t: parse_pointwise(t, rubric), schema, retries, chat, grammar=grammar)
        scores, rationale = res.value if res.ok else (None, None)
        store.save_judgement(judge_run_id=judge_run_id, run_id=run_id, request_id=out["request_id"],
                             rubric=rubric.name, template_version=POINTWISE_VERSION,
                             status="ok" if res.ok else "failed", scores=scores, rationale=rationale, raw=res.raw,
                             raw_attempts=res.raws, attempts=res.attempts, error=res.error, messages=messages,
                             constrained=res.constrained, rubric_version=rubric.version)
        doc["judged"] += 1
        doc["constrained"] += bool(res.constrained)
        if not res.ok:
            doc["failed"] += 1
        for c in rubric.criteria:
            doc["scores"].append({
                "request_id": out["request_id"], "model": out["model"], "prompt_id": out["prompt_id"],
                "criterion": c.name, "score": scores[c.name] if res.ok else None,
                "status": "ok" if res.ok else "failed", "rationale": rationale if res.ok else res.error,
                "raw": res.raw})
    if progress:
        progress(len(outputs), len(outputs), "done")


def combine_verdicts(ab: str, ba: str) -> str:
    """Two orders' verdicts (each a | b | tie | failed, already mapped to the candidates) -> final."""
    if "failed" in (ab, ba):
        return "failed"
    return ab if ab == ba else "inconsistent"


def _run_pairwise(judge_run_id, run_id, rubric, outputs, judge, retries, progress, chat, doc,
                  cancel=None) -> list[dict]:
    from core.store import quality as store

    by_prompt: dict[str, list[dict]] = {}
    for o in outputs:
        by_prompt.setdefault(o["prompt_id"], []).append(o)
    pairs = []
    for pid, outs in by_prompt.items():
        outs = sorted(outs, key=lambda o: (o["model"], o["request_id"]))
        for i in range(len(outs)):
            for j in range(i + 1, len(outs)):
                pairs.append((pid, outs[i], outs[j]))
    results = []
    for k, (pid, a, b) in enumerate(pairs):
        if progress:
            progress(k, len(pairs), f"{pid}: {a['model']} vs {b['model']}")
        if cancel is not None and cancel.is_set():
            return results
        verdicts, rationales, raws, errors = {}, {}, {}, []
        for order, first, second in (("ab", a, b), ("ba", b, a)):
            messages = pairwise_messages(rubric, pid, a["prompt_text"], first["output_text"], second["output_text"])
            res = ask(judge, messages, parse_pairwise, PAIRWISE_SCHEMA, retries, chat, grammar=PAIRWISE_GRAMMAR)
            doc["judged"] += 1
            doc["constrained"] += bool(res.constrained)
            raws[order] = res.raw
            if res.ok:
                winner, rationale = res.value
                rationales[order] = rationale
                verdicts[order] = "tie" if winner == "tie" else (
                    ("a" if winner == "1" else "b") if order == "ab" else ("b" if winner == "1" else "a"))
            else:
                verdicts[order] = "failed"
                rationales[order] = None
                errors.append(f"{order}: {res.error}")
                doc["failed"] += 1
        row = {"judge_run_id": judge_run_id, "run_id": run_id, "rubric": rubric.name, "prompt_id": pid,
               "request_a": a["request_id"], "request_b": b["request_id"], "model_a": a["model"],
               "model_b": b["model"], "template_version": PAIRWISE_VERSION, "verdict_ab": verdicts["ab"],
               "verdict_ba": verdicts["ba"], "verdict": combine_verdicts(verdicts["ab"], verdicts["ba"]),
               "rationale_ab": rationales["ab"], "rationale_ba": rationales["ba"], "raw_ab": raws["ab"],
               "raw_ba": raws["ba"], "error": "; ".join(errors) or None}
        store.save_pairwise(row)
        results.append({k2: v for k2, v in row.items() if k2 not in ("judge_run_id", "run_id", "rubric")})
    if progress:
        progress(len(pairs), len(pairs), "done")
    return results

