"""A model's tokens for the length sweep: its own tokenizer (GGUF vocabulary, a GenAI folder's tokenizer.json with
its chat template rendered as the runtime does; an endpoint without one is calibrated from its reported prompt
tokens), its context metadata, and meeting-notes prompts of exactly N tokens built from the shipped transcripts."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.bench.run.inputs import ModelSpec
from core.errors import UserError

HEADER = ("Summarise the meeting below as notes with two sections: Decisions and Action items (owner, due date). "
          "Use only what was said in the transcript.\n\nTranscript:\n")
MATERIAL_FILES = ("long_meetings.json", "meeting_notes.json")


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


def gguf_tokens(path: str) -> ModelTokens:
    from core.catalog.gguf_file import GgufTokenizer
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


def checked_window(value, source: str) -> tuple[int | None, str]:
    """(window, source) with the window range-checked: a figure a file or an endpoint claims that is not a whole
    number of tokens an INTEGER column holds is unknown (None), and the source says what was claimed."""
    from core.store.lengths import checked_count
    if value is None or value == 0:
        return None, "none"
    n = checked_count(value)
    if n is None:
        return None, f"{source} claimed {str(value)[:24]}: out of range, unknown"
    return n, source


def endpoint_window(spec: ModelSpec) -> int | None:
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
        return gguf_tokens(spec.path or resolve_gguf(spec.model))
    if spec.backend == "foundry":
        path = spec.path
        if not path:
            from core.catalog.foundry import get_local_model
            found = get_local_model(spec.model)
            path = found.get_path() if found is not None else None
        if not path or not (Path(path) / "tokenizer.json").is_file():
            raise UserError(f"no tokenizer.json for {spec.name}: its prompts cannot be built to a length")
        return folder_tokens(path)
    window = endpoint_window(spec)
    local = _local_folder(spec.model)
    if local is not None and (Path(local) / "tokenizer.json").is_file():
        tokens = folder_tokens(local)
        tokens.setting_name, tokens.kv_bytes_per_token = None, None
    else:
        tokens = calibrated_tokens(probe or _http_probe(spec), shipped_material()[:6000])
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


def shipped_material() -> str:
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
    material = material or shipped_material()
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
