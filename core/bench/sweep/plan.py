"""The length sweep: how long a user waits for the notes of a real meeting, and whether it fits.

``run_sweep(models, lengths, settings)`` (CLI ``bench --lengths 512,2048,4096,8192``, the Benchmark page's
Lengths mode) runs one benchmark run in which each model gets meeting transcripts of exactly those token
counts, built with its own tokenizer from the transcripts shipped in data/prompts (deterministic), or the
user's own long prompt set. Per model:

- the context window from its metadata (genai_config ``context_length``, GGUF ``context_length``, an
  endpoint's ``max_model_len`` / ``context_length``); a prompt whose tokens plus max tokens exceed it is never
  sent: its request fails "does not fit (N > window W)";
- the context the model is loaded with is a run setting (Foundry ``max_length``, llama.cpp ``n_ctx``):
  by default what the longest prompt that fits needs, capped at the window; with the KV cache share
  (bytes per token from the model's config x that context);
- every request starts with a unique request id (a system message), so no measured request is a prompt-cache
  hit; prompt tokens are recorded on every engine (the engine's count, else the model's tokenizer), and an
  engine that counts fewer prompt tokens than the transcript alone had is flagged truncating;
- TTFT(n) and TPOT(n) fitted by least squares on a + b n + c n^2 (b, c >= 0) over the requests, a bootstrap band, and
  the time to notes TTFT(n) + (out - 1) TPOT(n) at a target (default 6,000 prompt, 300 output tokens),
  extrapolated when the target lies beyond the longest prompt measured.

The runner is reused as it is (``LengthSweep`` only swaps each model's prompts and wraps its engine).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from core import metrics
from core.bench.run.bounds import MAX_LENGTH, check_sweep_targets
from core.bench.run.inputs import ModelSpec, PromptSet, Settings
from core.bench.sweep.fit import fit_sweep
from core.bench.sweep.tokens import ModelTokens, build_transcript, checked_window, endpoint_window, model_tokens, \
    request_messages, shipped_material
from core.bench.run.runner import Runner
from core.engines import open_engine
from core.errors import UserError

DEFAULT_LENGTHS = (512, 2048, 4096, 8192)
DEFAULT_TARGET_PROMPT = 6000
DEFAULT_TARGET_OUTPUT = 300
CONTEXT_MARGIN = 32          # tokens of headroom in the context setting (the request id's tokens vary)
CACHE_BUST = ("a unique request id in a system message at the start of every request: no two requests share "
              "more than the chat template's first tokens, so none is a prompt-cache hit")


def parse_lengths(text: str) -> list[int]:
    """'512,2048,4096' -> [512, 2048, 4096] (sorted, unique). UserError naming the bad value."""
    out = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise UserError(f"--lengths: {part!r} is not a whole number of tokens") from None
        if not 16 <= value <= MAX_LENGTH:
            raise UserError(f"--lengths: {value} is out of range (16 to {MAX_LENGTH:,} tokens)")
        out.append(value)
    if not out:
        raise UserError("--lengths: give prompt lengths in tokens, e.g. 512,2048,4096,8192")
    return sorted(set(out))


# -- per model: prompts, context setting, the engine ------------------------------------------------------------
@dataclass
class ModelPlan:
    spec: ModelSpec
    tokens: ModelTokens
    prompt_set: PromptSet
    content_tokens: dict[str, int]                  # prompt id -> tokens of its text alone
    est_tokens: dict[str, int]                      # prompt id -> tokens of the whole request (estimate)
    context_setting: int | None = None
    build_s: float = 0.0                            # the sweep's own work: building and counting prompts (wall)
    build_cpu_s: float = 0.0                        # the same, CPU seconds of the thread doing it
    extra: dict = field(default_factory=dict)       # id(rec) -> per-request facts the rows do not hold
    probe_tokens: int = 0                           # tokens of the request id message est_tokens was counted with

    def does_not_fit(self, prompt_tokens: int, max_tokens: int) -> str | None:
        """Why a request of `prompt_tokens` + `max_tokens` cannot be sent (the model's window first, then the
        context the run loaded it with), or None when it fits."""
        need = prompt_tokens + max_tokens
        for limit, what in ((self.tokens.window, "window"),
                            (self.context_setting, f"the run's context, {self.tokens.setting_name}")):
            if limit and need > limit:
                return (f"does not fit ({need} > {what} {limit}: {prompt_tokens} prompt + {max_tokens} output "
                        "tokens); not sent")
        return None

    def request_tokens(self, pid: str | None, sent: list[dict]) -> int:
        """Tokens of a request (its unique id, then the prompt). The template keeps each message's content
        apart (special tokens between them), so a request's tokens are its prompt's (counted once, ``est_tokens``)
        with the difference its own id makes: a few tokens to count instead of the whole prompt."""
        if pid in self.est_tokens:
            return self.est_tokens[pid] - self.probe_tokens + self.tokens.count(sent[0]["content"])
        return self.tokens.prompt_tokens(sent)

    @property
    def kv_cache_mb(self) -> float | None:
        return metrics.kv_cache_mb(self.tokens.kv_bytes_per_token, self.context_setting)


def plan_model(spec: ModelSpec, lengths: list[int] | None, settings: Settings, *, prompts: PromptSet | None = None,
               context: int | None = None, tokens: ModelTokens | None = None) -> ModelPlan:
    """The prompts (built to `lengths`, or the user's own set), their token counts and the context setting."""
    t0, c0 = time.perf_counter(), time.thread_time()
    tokens = tokens or model_tokens(spec)
    if tokens.window is None and spec.backend == "openai":
        window = endpoint_window(spec)
        if window:
            tokens.window, tokens.window_source = window, "endpoint"
    if tokens.window is not None:        # what a file or an endpoint claims, before it sizes or is stored
        tokens.window, tokens.window_source = checked_window(tokens.window, tokens.window_source)
    if prompts is None:
        material = shipped_material()
        items = [{"id": f"len-{n}", "text": build_transcript(tokens, n, material), "tags": ["length", str(n)],
                  "length": n} for n in sorted(lengths, reverse=True)][::-1]   # the longest first: one encoding
    else:
        items = [dict(p, length=tokens.count(p["text"])) for p in prompts.prompts]
        items.sort(key=lambda p: p["length"])
    content = {p["id"]: (p["length"] if prompts is None else tokens.count(p["text"])) for p in items}
    # a request's tokens = its contents' + the template's (the template keeps contents apart): counted once
    probe = request_messages("Transcript")
    overhead = tokens.prompt_tokens(probe) - sum(tokens.count(m["content"]) for m in probe)
    est = {p["id"]: content[p["id"]] + tokens.count(probe[0]["content"]) + overhead for p in items}
    window = tokens.window
    if context is not None:
        check_sweep_targets(1, 1, context)
        if window and context > window:
            raise UserError(f"--context {context} is more than {spec.name}'s window ({window} tokens)")
        setting = context
    elif tokens.setting_name:
        fitting = [est[p["id"]] + settings.max_tokens for p in items
                   if not window or est[p["id"]] + settings.max_tokens <= window]
        need = (max(fitting) if fitting else min(est.values()) + settings.max_tokens) + CONTEXT_MARGIN
        need = -(-need // 256) * 256
        setting = min(need, window) if window else need
    else:
        setting = None
    name = prompts.name if prompts is not None else "lengths " + ",".join(map(str, lengths))
    plan = ModelPlan(spec, tokens, PromptSet(name, items), content, est, setting,
                     probe_tokens=tokens.count(probe[0]["content"]))
    plan.build_s, plan.build_cpu_s = time.perf_counter() - t0, time.thread_time() - c0
    return plan


class SweepEngine:
    """The model's engine, for the sweep: checks each request fits, makes it unique, records its prompt tokens
    and the process's peak memory after it. Everything else is the engine's own."""

    def __init__(self, inner, plan: ModelPlan):
        self.inner = inner
        self.plan = plan

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def arequest(self, messages, opts, rec) -> None:
        plan = self.plan
        t0, c0 = time.perf_counter(), time.thread_time()
        text = messages[-1]["content"]
        pid = next((p["id"] for p in plan.prompt_set.prompts if p["text"] == text), None)
        sent = request_messages(text)
        n = plan.request_tokens(pid, sent)
        plan.build_s += time.perf_counter() - t0
        plan.build_cpu_s += time.thread_time() - c0
        facts = {"prompt_id": pid, "estimated_prompt_tokens": n, "prompt_tokens_source": None, "fits": True}
        plan.extra[id(rec)] = facts
        why = plan.does_not_fit(n, opts.max_tokens)
        if why:
            facts["fits"] = False
            rec.prompt_tokens = n
            rec.fail(why)
            return
        rec.prompt_tokens = None
        await self.inner.arequest(sent, opts, rec)
        if rec.prompt_tokens is None:
            rec.prompt_tokens, facts["prompt_tokens_source"] = n, plan.tokens.source
        else:
            facts["prompt_tokens_source"] = "usage"
            alone = plan.content_tokens.get(pid) if pid else None
            if alone is not None and plan.tokens.source != "calibrated" and rec.prompt_tokens < alone:
                facts["truncated"] = True
                rec.fail(f"truncated prompt: the engine counted {rec.prompt_tokens} prompt tokens, the transcript "
                         f"alone has {alone}")
        stats = self.inner.process_stats()
        facts["peak_rss_mb"] = (stats or {}).get("peak_rss_mb")
        facts["rss_mb"] = (stats or {}).get("rss_mb")


def sweep_engine(spec: ModelSpec, plan: ModelPlan):
    """The engine for a model at the plan's context setting."""
    return SweepEngine(open_engine(spec, plan.context_setting), plan)


# -- the sweep: one run --------------------------------------------------------------------------------------------
@dataclass
class SweepSettings(Settings):
    """A run's settings with the sweep's own (stored with the run: lengths, target, context asked)."""
    sweep: dict = field(default_factory=dict)


class LengthSweep(Runner):
    """A benchmark run whose prompts are per model (each built with the model's own tokenizer)."""

    def __init__(self, models: list[ModelSpec], lengths: list[int] | None, settings: Settings, *,
                 prompts: PromptSet | None = None, context: int | None = None,
                 target_prompt: int = DEFAULT_TARGET_PROMPT, target_output: int = DEFAULT_TARGET_OUTPUT,
                 plans: dict | None = None, **kwargs):
        if lengths is None and prompts is None:
            raise UserError("a length sweep needs lengths (e.g. 512,2048,4096,8192) or a long prompt set")
        check_sweep_targets(target_prompt, target_output, context)
        self.lengths, self.user_prompts, self.context = lengths, prompts, context
        self.target_prompt, self.target_output = int(target_prompt), int(target_output)
        settings = SweepSettings(**asdict(settings), sweep={
            "lengths": lengths, "prompts": prompts.name if prompts is not None else None, "context": context,
            "target_prompt_tokens": self.target_prompt, "target_output_tokens": self.target_output}).validate()
        if settings.concurrency != [1]:
            raise UserError("a length sweep runs at concurrency 1 (one request at a time: TTFT is prefill alone)")
        self.plans: dict[tuple, ModelPlan] = {}
        for spec in models:
            key = (spec.model, spec.backend)
            self.plans[key] = (plans or {}).get(key) or plan_model(spec, lengths, settings, prompts=prompts,
                                                                   context=context)
        union, seen = [], set()
        for plan in self.plans.values():
            for p in plan.prompt_set.prompts:
                if p["id"] not in seen:
                    seen.add(p["id"])
                    union.append({"id": p["id"], "text": p["text"], "tags": p["tags"]})
        for plan in self.plans.values():   # the same id for two different texts: one id per model's text
            for p in plan.prompt_set.prompts:
                if next(u for u in union if u["id"] == p["id"])["text"] != p["text"]:
                    old, p["id"] = p["id"], f"{p['id']}@{plan.spec.name}"
                    plan.content_tokens[p["id"]] = plan.content_tokens.pop(old)
                    plan.est_tokens[p["id"]] = plan.est_tokens.pop(old)
                    union.append({"id": p["id"], "text": p["text"], "tags": p["tags"]})
        name = prompts.name if prompts is not None else "lengths " + ",".join(map(str, lengths))
        self._union = PromptSet(name, union)
        self.sweeps: list[dict] = []
        super().__init__(models, self._union, settings, engine_factory=self._engine, **kwargs)

    def _plan(self, spec: ModelSpec) -> ModelPlan:
        return self.plans[(spec.model, spec.backend)]

    def _engine(self, spec: ModelSpec):
        return sweep_engine(spec, self._plan(spec))

    def prompts_for(self, spec):
        return self._plan(spec).prompt_set

    def _finish_level(self, engine, lv):
        super()._finish_level(engine, lv)
        spec = lv.spec
        plan = self._plan(spec)
        points = []
        for (item, rec, *_), row in zip(lv.done, self.last_rows):
            if item.warmup:
                continue
            facts = plan.extra.get(id(rec), {})
            ok = bool(row["ok"])
            points.append({
                "prompt_id": item.prompt["id"], "length": item.prompt.get("length"), "round": item.round,
                "prompt_tokens": row["prompt_tokens"], "prompt_tokens_source": facts.get("prompt_tokens_source"),
                "ttft_ms": row["ttft_ms"], "tpot_ms": row["tpot_ms"], "e2e_ms": row["e2e_ms"],
                "completion_tokens": row["completion_tokens"],
                "prefill_tokens_per_s": metrics.prefill_tokens_per_s(row["prompt_tokens"], row["ttft_ms"]),
                "decode_tokens_per_s": metrics.per_s(row["tpot_ms"]),
                "peak_rss_mb": facts.get("peak_rss_mb"), "fits": facts.get("fits", True),
                "truncated": bool(facts.get("truncated")), "ok": ok,
                "fitted": ok and row["ttft_ms"] is not None and row["prompt_tokens"] is not None,
                "error": row["error"]})
        self.sweeps.append(self._sweep(spec, plan, points))

    def _sweep(self, spec: ModelSpec, plan: ModelPlan, points: list[dict]) -> dict:
        fit = fit_sweep(points, self.target_prompt, self.target_output)
        prefill = [p["prefill_tokens_per_s"] for p in points if p["fitted"] and p["prefill_tokens_per_s"]]
        sweep = {
            "run_id": self.run_id, "model": spec.model, "backend": spec.backend, "label": spec.name,
            "lengths": self.lengths or [p.get("length") for p in plan.prompt_set.prompts],
            "context_window": plan.tokens.window, "context_window_source": plan.tokens.window_source,
            "context_setting": plan.context_setting, "context_setting_name": plan.tokens.setting_name or "none",
            "kv_bytes_per_token": plan.tokens.kv_bytes_per_token, "kv_cache_mb": plan.kv_cache_mb,
            "tokenizer_source": plan.tokens.source, "cache_bust": CACHE_BUST,
            "truncating": any(p["truncated"] for p in points), "points": points,
            "fit": {k: fit[k] for k in ("ttft_ms", "tpot_ms", "curve")},
            "prefill_tokens_per_s": float(np.median(prefill)) if prefill else None,
            "build_s": plan.build_s, "build_cpu_s": plan.build_cpu_s,
            **{k: fit[k] for k in ("target_prompt_tokens", "target_output_tokens", "ttft_at_target_ms",
                                   "tpot_at_target_ms", "time_to_notes_ms", "time_to_notes_low_ms",
                                   "time_to_notes_high_ms", "extrapolated", "max_measured_tokens")},
        }
        from core.bench.run.persist import StoreRecorder
        if isinstance(self.recorder, StoreRecorder):
            from core.store.lengths import save_sweep
            save_sweep(sweep)
        return sweep


def run_sweep(models: list[ModelSpec], lengths: list[int] | None, settings: Settings, **kwargs):
    """Run a length sweep; returns (RunOutcome, [sweep per model])."""
    sweep = LengthSweep(models, lengths, settings, **kwargs)
    outcome = sweep.run()
    return outcome, sweep.sweeps


# -- words -----------------------------------------------------------------------------------------------------------
def _s(ms: float | None) -> str:
    return "–" if ms is None else f"{ms / 1000:,.1f} s"


def sweep_lines(sweep: dict) -> list[str]:
    """Plain-language lines about one model's sweep (callers escape them for their medium)."""
    out = []
    window = sweep.get("context_window")
    setting = sweep.get("context_setting")
    source = sweep.get("context_window_source")
    ctx = (f"context window {window:,} tokens ({source})" if window else
           f"context window unknown ({source})" if source and source != "none" else "context window unknown")
    if setting:
        ctx += f"; loaded with {sweep.get('context_setting_name')} {setting:,}"
        if sweep.get("kv_cache_mb") is not None:
            ctx += f" (KV cache {sweep['kv_cache_mb']:,.0f} MB of it)"
    out.append(ctx)
    ttn = sweep.get("time_to_notes_ms")
    if ttn is not None:
        band = ""
        if sweep.get("time_to_notes_low_ms") is not None:
            band = f" (95% band {_s(sweep['time_to_notes_low_ms'])} to {_s(sweep['time_to_notes_high_ms'])})"
        else:
            band = " (no band: as many requests as curve parameters)"
        out.append(f"time to notes for {sweep['target_prompt_tokens']:,} prompt + {sweep['target_output_tokens']:,} "
                   f"output tokens: first words after {_s(sweep.get('ttft_at_target_ms'))}, whole notes after "
                   f"{_s(ttn)}{band}" + (f"; extrapolated beyond the longest prompt measured "
                                         f"({sweep.get('max_measured_tokens') or 0:,} tokens)"
                                         if sweep.get("extrapolated") else ""))
    else:
        out.append("time to notes: not enough successful lengths to fit the curves")
    if sweep.get("prefill_tokens_per_s") is not None:
        out.append(f"prefill speed (median) {sweep['prefill_tokens_per_s']:,.0f} prompt tokens/s")
    if sweep.get("truncating"):
        out.append("TRUNCATING: the engine counted fewer prompt tokens than the transcript had")
    return out


def markdown_section(sweeps: list[dict]) -> str:
    """The report's "Prompt length" section (Markdown, every untrusted text escaped); "" without sweeps."""
    from core.output import md_text
    if not sweeps:
        return ""

    def n(v, digits=1):
        return "–" if v is None else (f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}")
    out = ["## Prompt length: prefill, decode at depth, time to notes", ""]
    for sw in sweeps:
        out += [f"### {md_text(sw.get('label') or sw['model'])} [{md_text(sw['backend'])}]", ""]
        out += [f"- {md_text(line)}" for line in sweep_lines(sw)]
        out += [f"- prompt cache: {md_text(sw.get('cache_bust'))}", ""]
        out += ["| target tokens | prompt tokens (source) | TTFT (ms) | prefill (tok/s) | TPOT (ms) "
                "| decode (tok/s) | peak RSS (MB) | status |", "|" + "---|" * 8]
        for p in sw.get("points") or []:
            status = "ok" if p.get("ok") else md_text(p.get("error"))
            out.append(f"| {n(p.get('length'))} | {n(p.get('prompt_tokens'))} ({md_text(p.get('prompt_tokens_source') or '–')}) "
                       f"| {n(p.get('ttft_ms'))} | {n(p.get('prefill_tokens_per_s'), 0)} | {n(p.get('tpot_ms'), 2)} "
                       f"| {n(p.get('decode_tokens_per_s'))} | {n(p.get('peak_rss_mb'), 0)} | {status} |")
        fit = sw.get("fit") or {}
        for key, label in (("ttft_ms", "TTFT(n)"), ("tpot_ms", "TPOT(n)")):
            f = fit.get(key)
            if f:
                a, b, c = f["coef"]
                out.append(f"\n{label} = {a:,.2f} + {b:.5g}·n + {c:.3g}·n² ms (least squares over {f['n_points']} "
                           f"requests, RMSE {f['rmse']:,.2f} ms)")
        out.append("")
    return "\n".join(out) + "\n"


def sweep_job(models: list[ModelSpec], lengths: list[int] | None, settings: Settings, **kwargs):
    """A length sweep in the background for the page (``BenchJob`` with ``LengthSweep`` as its runner)."""
    from core.bench.run.job import BenchJob
    return BenchJob(models, lengths, settings, runner_cls=LengthSweep, **kwargs)
