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

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core import metrics
from core.bench.inputs import ModelSpec, PromptSet, Settings
from core.bench.runner import Runner, default_engine
from core.errors import UserError

DEFAULT_LENGTHS = (512, 2048, 4096, 8192)
DEFAULT_TARGET_PROMPT = 6000
DEFAULT_TARGET_OUTPUT = 300
MAX_LENGTH = 1_000_000
CONTEXT_MARGIN = 32          # tokens of headroom in the context setting (the request id's tokens vary)
N_BOOT = 2000
HEADER = ("Summarise the meeting below as notes with two sections: Decisions and Action items (owner, due date). "
          "Use only what was said in the transcript.\n\nTranscript:\n")
MATERIAL_FILES = ("long_meetings.json", "meeting_notes.json")
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


# -- a model's tokens -----------------------------------------------------------------------------------------
@dataclass
class ModelTokens:
    """How many tokens a model sees, from its own tokenizer, and what its metadata says about context."""
    count: Callable[[str], int]                     # tokens of a text (no special tokens added)
    source: str                                     # gguf | tokenizer.json | calibrated
    window: int | None = None                       # the model's context window (tokens)
    window_source: str = "none"                     # genai_config | gguf | endpoint | none
    setting_name: str | None = None                 # the run setting that sizes the context: max_length | n_ctx
    kv_bytes_per_token: int | None = None
    chat: Callable[[list[dict]], int | None] | None = None   # tokens of a whole chat prompt as the engine builds it
    overhead: int = 16                              # template tokens per message when `chat` is unknown
    encode: Callable[[str], list[int]] | None = None
    decode: Callable[[list[int]], str] | None = None
    cache: dict = field(default_factory=dict, repr=False)   # material text -> its token ids

    def prompt_tokens(self, messages: list[dict]) -> int:
        if self.chat is not None:
            n = self.chat(messages)
            if n is not None:
                return n
        return sum(self.count(str(m.get("content", ""))) + self.overhead for m in messages)


def _gguf_tokens(path: str) -> ModelTokens:
    from core.catalog.gguf import GgufTokenizer
    tok = GgufTokenizer(path)
    llm = tok._llm
    return ModelTokens(count=tok, source="gguf", window=tok.context_length,
                       window_source="gguf" if tok.context_length else "none", setting_name="n_ctx",
                       kv_bytes_per_token=tok.kv_bytes_per_token(), chat=tok.prompt_tokens,
                       encode=lambda text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=False),
                       decode=lambda ids: llm.detokenize(ids).decode("utf-8", errors="ignore"))


def _template(folder: Path) -> tuple[str | None, dict]:
    config = {}
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8"), config
    template = config.get("chat_template") if isinstance(config, dict) else None
    return (template if isinstance(template, str) else None), config


def folder_tokens(folder: str | Path) -> ModelTokens:
    """A GenAI folder's tokenizer.json and chat template (rendered as the runtime does, with jinja2)."""
    from tokenizers import Tokenizer

    from core.catalog.foundry import genai_context
    folder = Path(folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ctx = genai_context(folder)
    template_text, config = _template(folder)
    chat = None
    if template_text:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        template = ImmutableSandboxedEnvironment().from_string(template_text)

        def chat(messages: list[dict]) -> int:
            text = template.render(messages=messages, add_generation_prompt=True,
                                   bos_token=config.get("bos_token") or "", eos_token=config.get("eos_token") or "")
            return len(tok.encode(text, add_special_tokens=False).ids)
    window = ctx.get("context_length")
    return ModelTokens(count=lambda text: len(tok.encode(text, add_special_tokens=False).ids) if text else 0,
                       source="tokenizer.json", window=window, window_source="genai_config" if window else "none",
                       setting_name="max_length", kv_bytes_per_token=ctx.get("kv_bytes_per_token"), chat=chat,
                       encode=lambda text: tok.encode(text, add_special_tokens=False).ids,
                       decode=lambda ids: tok.decode(ids, skip_special_tokens=False))


def calibrated_tokens(probe: Callable[[str], int | None], sample: str) -> ModelTokens:
    """For an endpoint without a local tokenizer: characters per token measured from its reported prompt tokens
    (two one-token requests, a short and a long one). Counts are estimates (source ``calibrated``)."""
    short, long_ = probe("Hi."), probe(sample)
    if short is None or long_ is None or long_ <= short:
        raise UserError("the endpoint reports no prompt tokens (usage), and no local tokenizer knows this model: "
                        "its prompts cannot be built to a length; give your own long prompt set")
    per_token = (len(sample) - 3) / (long_ - short)
    overhead = max(short - 1, 0)
    return ModelTokens(count=lambda text: int(round(len(text) / per_token)), source="calibrated",
                       chat=lambda messages: sum(int(round(len(str(m.get("content", ""))) / per_token))
                                                 for m in messages) + overhead)


def _endpoint_window(spec: ModelSpec) -> int | None:
    from core.catalog.endpoints import fetch_models
    try:
        for m in fetch_models(spec.endpoint, spec.api_key_env, timeout=5.0):
            if m.get("id") == spec.model:
                value = m.get("max_model_len") or m.get("context_length")
                return int(value) if value else None
    except (UserError, TypeError, ValueError):
        return None
    return None


def model_tokens(spec: ModelSpec, probe: Callable[[str], int | None] | None = None) -> ModelTokens:
    """The tokenizer and context metadata of the model behind `spec`."""
    if spec.backend == "llamacpp":
        from core.engines.llamacpp import resolve_gguf
        return _gguf_tokens(spec.path or resolve_gguf(spec.model))
    if spec.backend == "foundry":
        path = spec.path
        if not path:
            from core.catalog.foundry import get_local_model
            found = get_local_model(spec.model)
            path = found.get_path() if found is not None else None
        if not path or not (Path(path) / "tokenizer.json").is_file():
            raise UserError(f"no tokenizer.json for {spec.name}: its prompts cannot be built to a length")
        return folder_tokens(path)
    window = _endpoint_window(spec)
    local = _local_folder(spec.model)
    if local is not None and (Path(local) / "tokenizer.json").is_file():
        tokens = folder_tokens(local)
        tokens.setting_name, tokens.kv_bytes_per_token = None, None
    else:
        tokens = calibrated_tokens(probe or _http_probe(spec), _material()[:6000])
    tokens.window, tokens.window_source = (window, "endpoint") if window else (tokens.window, tokens.window_source)
    return tokens


def _local_folder(model: str) -> str | None:
    try:
        from core.catalog.foundry import list_local_models
        for row in list_local_models():
            if model in (row.get("id"), row.get("alias")) and row.get("path"):
                return row["path"]
    except Exception:
        return None
    return None


def _http_probe(spec: ModelSpec) -> Callable[[str], int | None]:
    from core.engines.base import RequestOptions
    from core.engines.http import HttpEngine

    def probe(text: str) -> int | None:
        engine = HttpEngine(spec.model, spec.endpoint, api_key_env=spec.api_key_env)
        try:
            rec = engine.run_one([{"role": "user", "content": text}],
                                 RequestOptions(max_tokens=1, stream=False, timeout_s=120.0))
        finally:
            engine.close()
        return rec.prompt_tokens
    return probe


# -- prompts of exact lengths ---------------------------------------------------------------------------------
def _material() -> str:
    """The shipped meeting transcripts, joined (the text after each prompt's 'Transcript:')."""
    from core.config import PROMPTS_DIR
    parts = []
    for name in MATERIAL_FILES:
        for p in json.loads((Path(PROMPTS_DIR) / name).read_text(encoding="utf-8")):
            text = p["text"] if isinstance(p, dict) else p
            parts.append(text.split("Transcript:\n", 1)[-1].strip())
    return "\n\n".join(parts)


def build_transcript(tokens: ModelTokens, n: int, material: str | None = None) -> str:
    """A meeting-notes prompt of exactly `n` tokens by `tokens.count` (header + transcript, cut to fit).
    Deterministic. A calibrated tokenizer gives an estimate. UserError when `n` is below the header's."""
    material = material or _material()
    count = tokens.count
    head = count(HEADER)
    if head >= n:
        raise UserError(f"a prompt of {n} tokens is shorter than the instructions alone ({head} tokens)")
    body = None
    if tokens.encode is not None and tokens.decode is not None:
        ids = tokens.cache.get("ids") if tokens.cache.get("source") == material else None
        if ids is None or len(ids) < n + 8:   # the material is tokenized once (as far as needed), not per length
            text = material
            while len(text) < 5 * n:
                text = text + "\n\n" + material
            text = text[:5 * n]
            ids = tokens.encode(text)
            while len(ids) < n + 8:
                text = text + "\n\n" + material
                ids = tokens.encode(text)
            tokens.cache.update(source=material, ids=ids)
        for m in (n - head, n - head - 1, n - head + 1, n - head - 2):
            text = HEADER + tokens.decode(ids[:max(m, 0)])
            if count(text) == n:
                return text
        body = len(tokens.decode(ids[:n - head]))
    while count(HEADER + material) <= n:
        material = material + "\n\n" + material
    lo, hi = 0, len(material)       # the longest cut of the material that stays within n
    if body is not None:
        lo, hi = max(0, body - 400), min(len(material), body + 400)
        if count(HEADER + material[:lo]) > n:
            lo = 0
        if count(HEADER + material[:hi]) <= n:
            hi = len(material)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(HEADER + material[:mid]) <= n:
            lo = mid
        else:
            hi = mid - 1
    for k in range(lo, max(lo - 60, 0), -1):
        for suffix in ("", ".", "\n", " -", ",", "\n\n", " ."):
            text = HEADER + material[:k] + suffix
            if count(text) == n:
                return text
    if tokens.source == "calibrated":
        return HEADER + material[:lo]
    raise UserError(f"cannot build a prompt of exactly {n} tokens with this tokenizer")


def request_messages(text: str) -> list[dict]:
    """What is sent for a prompt: a unique request id first (no prompt-cache hit), then the prompt."""
    return [{"role": "system", "content": f"Request {uuid.uuid4().hex[:12]}. You write meeting notes."},
            {"role": "user", "content": text}]


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
        window = _endpoint_window(spec)
        if window:
            tokens.window, tokens.window_source = window, "endpoint"
    if prompts is None:
        material = _material()
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
        if context < 16:
            raise UserError(f"--context {context} is too small")
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
    if spec.backend == "llamacpp":
        from core.engines.llamacpp import LlamaCppEngine, resolve_gguf
        inner = LlamaCppEngine(spec.path or resolve_gguf(spec.model), n_ctx=plan.context_setting)
    elif spec.backend == "foundry":
        from core.engines.foundry import FoundryEngine
        inner = FoundryEngine(spec.model, model_row={"version": spec.version, "path": spec.path,
                                                     "execution_provider": spec.execution_provider},
                              context_length=plan.context_setting)
    else:
        inner = default_engine(spec)
    return SweepEngine(inner, plan)


# -- the fit -----------------------------------------------------------------------------------------------------
def _lsq(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """Least squares of y on 1, n, n^2 (up to `degree`) with b, c >= 0: a longer prompt never takes less time
    to read, and attention's share only grows (scipy's bounded linear least squares; n scaled for conditioning)."""
    from scipy.optimize import lsq_linear
    scale = max(float(np.max(np.abs(x))), 1.0)
    design = np.vander(x / scale, degree + 1, increasing=True)
    lower = [-np.inf] + [0.0] * degree
    sol = lsq_linear(design, y, bounds=(lower, [np.inf] * (degree + 1)), method="bvls").x
    return sol / scale ** np.arange(degree + 1)


def fit_curve(x, y, degree: int = 2) -> dict | None:
    """Least squares of y on a + b n + c n^2 with b, c >= 0 (lower degree when fewer distinct lengths):
    {"coef": [a, b, c], "degree", "n_points", "rmse"}; None from fewer than 2 distinct lengths."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    degree = min(degree, len(np.unique(x)) - 1)
    if degree < 1:
        return None
    coef = _lsq(x, y, degree)
    resid = y - np.polynomial.polynomial.polyval(x, coef)
    coef = list(map(float, coef)) + [0.0] * (2 - degree)
    return {"coef": coef, "degree": int(degree), "n_points": int(len(x)),
            "rmse": float(np.sqrt(np.mean(resid ** 2)))}


def predict(fit: dict | None, n) -> float | None:
    if fit is None:
        return None
    a, b, c = fit["coef"]
    return float(a + b * n + c * n * n)


def slope_at(fit: dict | None, n: float) -> float | None:
    """d/dn of the fitted curve at n (ms per prompt token)."""
    if fit is None:
        return None
    return float(fit["coef"][1] + 2 * fit["coef"][2] * n)


def fit_sweep(points: list[dict], target_prompt: int = DEFAULT_TARGET_PROMPT,
              target_output: int = DEFAULT_TARGET_OUTPUT, *, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Curves and the time to notes from the sweep's requests (those with ``fitted``).

    The band is a case bootstrap over the requests (each resample refitted); there is none ("n/a") when the
    requests are no more than the curve's parameters: a curve through every point says nothing of its spread."""
    used = [p for p in points if p.get("fitted")]
    x = [p["prompt_tokens"] for p in used]
    ttft = fit_curve(x, [p["ttft_ms"] for p in used])
    tp = [(p["prompt_tokens"], p["tpot_ms"]) for p in used if p.get("tpot_ms") is not None]
    tpot = fit_curve([a for a, _ in tp], [b for _, b in tp])
    longest = max(x) if x else None
    out = {"ttft_ms": ttft, "tpot_ms": tpot, "target_prompt_tokens": int(target_prompt),
           "target_output_tokens": int(target_output), "max_measured_tokens": longest,
           "extrapolated": bool(longest is None or target_prompt > longest),
           "ttft_at_target_ms": predict(ttft, target_prompt), "tpot_at_target_ms": predict(tpot, target_prompt),
           "time_to_notes_ms": None, "time_to_notes_low_ms": None, "time_to_notes_high_ms": None, "curve": []}
    if ttft is not None and tpot is not None:
        out["time_to_notes_ms"] = time_to_notes_ms(out["ttft_at_target_ms"], out["tpot_at_target_ms"], target_output)
    if not x:
        return out
    top = max(longest, target_prompt)
    grid = np.unique(np.linspace(0, top, 41).round().astype(int))
    boots = _bootstrap(used, grid, target_prompt, target_output, n_boot, seed)
    for i, n in enumerate(grid):
        row = {"n": int(n), "ttft_ms": predict(ttft, n), "tpot_ms": predict(tpot, n),
               "ttft_low_ms": None, "ttft_high_ms": None, "tpot_low_ms": None, "tpot_high_ms": None}
        if boots is not None:
            row.update(ttft_low_ms=boots["ttft"][0][i], ttft_high_ms=boots["ttft"][1][i])
            if boots["tpot"] is not None:
                row.update(tpot_low_ms=boots["tpot"][0][i], tpot_high_ms=boots["tpot"][1][i])
        out["curve"].append(row)
    if boots is not None and boots["notes"] is not None:
        out["time_to_notes_low_ms"], out["time_to_notes_high_ms"] = boots["notes"]
    return out


def time_to_notes_ms(ttft_ms: float | None, tpot_ms: float | None, output_tokens: int) -> float | None:
    """TTFT + (out - 1) x TPOT: the wait for a whole answer of `output_tokens` tokens."""
    if ttft_ms is None or tpot_ms is None:
        return None
    return ttft_ms + (output_tokens - 1) * tpot_ms


def _bootstrap(used: list[dict], grid, target_prompt: int, target_output: int, n_boot: int, seed: int):
    x = np.asarray([p["prompt_tokens"] for p in used], float)
    y1 = np.asarray([p["ttft_ms"] for p in used], float)
    y2 = np.asarray([np.nan if p.get("tpot_ms") is None else p["tpot_ms"] for p in used], float)
    degree = min(2, len(np.unique(x)) - 1)
    if degree < 1 or len(x) <= degree + 1:
        return None
    rng = np.random.default_rng(seed)
    ttft_pred, tpot_pred, notes = [], [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        xs = x[idx]
        if len(np.unique(xs)) <= degree:
            continue
        c1 = _lsq(xs, y1[idx], degree)
        ttft_pred.append(np.polynomial.polynomial.polyval(grid, c1))
        ok = np.isfinite(y2[idx])
        if len(np.unique(xs[ok])) > degree:
            c2 = _lsq(xs[ok], y2[idx][ok], degree)
            tpot_pred.append(np.polynomial.polynomial.polyval(grid, c2))
            notes.append(np.polynomial.polynomial.polyval(target_prompt, c1)
                         + (target_output - 1) * np.polynomial.polynomial.polyval(target_prompt, c2))
    if len(ttft_pred) < 100:
        return None

    def band(rows):
        lo, hi = np.quantile(np.asarray(rows), [0.025, 0.975], axis=0)
        return [float(v) for v in np.atleast_1d(lo)], [float(v) for v in np.atleast_1d(hi)]
    notes_band = None
    if len(notes) >= 100:
        lo, hi = np.quantile(np.asarray(notes), [0.025, 0.975])
        notes_band = (float(lo), float(hi))
    return {"ttft": band(ttft_pred), "tpot": band(tpot_pred) if len(tpot_pred) >= 100 else None, "notes": notes_band}


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
        if target_prompt < 1 or target_output < 1:
            raise UserError("the target prompt and output lengths must be at least 1 token")
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

    def _todo(self, spec, level):
        saved = self.prompt_set
        self.prompt_set = self._plan(spec).prompt_set
        try:
            return super()._todo(spec, level)
        finally:
            self.prompt_set = saved

    def _run_model(self, position, spec, mp, env):
        self.prompt_set = self._plan(spec).prompt_set
        try:
            super()._run_model(position, spec, mp, env)
        finally:
            self.prompt_set = self._union

    def _finish_level(self, engine, spec, mp, level, base, out, ids, previous):
        super()._finish_level(engine, spec, mp, level, base, out, ids, previous)
        plan = self._plan(spec)
        points = []
        for (item, rec, _), row in zip(out.done, self.last_rows):
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
        from core.bench.persist import StoreRecorder
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
    ctx = f"context window {window:,} tokens ({sweep.get('context_window_source')})" if window else "context window unknown"
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
    from core.bench.job import BenchJob
    return BenchJob(models, lengths, settings, runner_cls=LengthSweep, **kwargs)
