"""What a benchmark is asked to do: settings, the models (ModelSpec) and the prompt set, and their parsers."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.engines.base import RequestOptions
from core.errors import UserError


@dataclass
class Settings:
    rounds: int = 3
    warmup: int = 1
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = 0
    concurrency: list[int] = field(default_factory=lambda: [1])
    timeout_s: float = 120.0
    stream: bool = True
    order: str = "interleaved"       # interleaved | blocked (core.bench.run.order)

    def validate(self) -> "Settings":
        if self.rounds < 1:
            raise UserError("rounds must be at least 1")
        if self.warmup < 0:
            raise UserError("warm-up requests cannot be negative")
        if self.max_tokens < 1:
            raise UserError("max tokens must be at least 1")
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise UserError("concurrency levels must be whole numbers of at least 1")
        if self.timeout_s <= 0:
            raise UserError("the per-request timeout must be positive")
        if not 0 <= self.temperature <= 2:
            raise UserError("temperature must be between 0 and 2")
        self.concurrency = sorted(set(int(c) for c in self.concurrency))
        from core.bench.run.bounds import check_settings
        check_settings(rounds=self.rounds, warmup=self.warmup, max_tokens=self.max_tokens,
                       concurrency=self.concurrency, timeout_s=self.timeout_s)
        from core.bench.run.order import validate_order
        validate_order(self.order)
        return self

    def request_options(self) -> RequestOptions:
        return RequestOptions(temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed,
                              timeout_s=self.timeout_s, stream=self.stream)


@dataclass
class ModelSpec:
    """One model to benchmark on one engine."""
    model: str                       # id as the engine knows it
    backend: str                     # foundry | openai | llamacpp
    label: str | None = None         # what the user called it (alias)
    endpoint: str | None = None
    api_key_env: str | None = None
    server_pid: int | None = None    # HTTP server's process, when the user knows it
    disk_mb: float | None = None
    license: str | None = None
    version: str | None = None
    execution_provider: str | None = None
    path: str | None = None          # GGUF path for llama.cpp

    @property
    def name(self) -> str:
        return self.label or self.model

    @classmethod
    def from_row(cls, row: dict) -> "ModelSpec":
        """From a row of core.catalog.models.list_models()."""
        return cls(model=row["id"], backend=row["backend"], label=row.get("alias") or row["id"],
                   endpoint=row.get("endpoint"), api_key_env=row.get("api_key_env"), disk_mb=row.get("disk_mb"),
                   license=row.get("license"), version=row.get("version"),
                   execution_provider=row.get("execution_provider"), path=row.get("path"))


@dataclass
class PromptSet:
    name: str
    prompts: list[dict]              # {"id", "text", "tags"}

    @property
    def hash(self) -> str:
        canonical = json.dumps([[p["id"], p["text"]] for p in self.prompts], ensure_ascii=False,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_prompts(data, name: str = "prompts") -> PromptSet:
    """A prompt set from parsed JSON: a list of strings (the workshop's shape), or a list of
    {id, text, tags} objects, or {"prompts": [...]} holding either. UserError naming the file, the prompt and
    the problem; limits: SLM_MAX_PROMPTS prompts, SLM_MAX_PROMPT_CHARS characters each (core.config)."""
    from core.config import limit

    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        data = data["prompts"]
    if not isinstance(data, list):
        raise UserError(f"prompt file {name} must hold a JSON list of prompts (strings or objects with a text)")
    if not data:
        raise UserError(f"prompt file {name} has no prompts")
    max_prompts, max_chars = limit("SLM_MAX_PROMPTS"), limit("SLM_MAX_PROMPT_CHARS")
    if len(data) > max_prompts:
        raise UserError(f"prompt file {name} has {len(data):,} prompts; the limit is {max_prompts:,} (SLM_MAX_PROMPTS)")
    prompts, seen = [], set()
    for i, item in enumerate(data, 1):
        if isinstance(item, str):
            pid, text, tags = f"p{i:02d}", item, []
        elif isinstance(item, dict):
            text = item.get("text", item.get("prompt"))
            pid = item.get("id", f"p{i:02d}")
            tags = item.get("tags") or []
            if not isinstance(pid, (str, int)) or isinstance(pid, bool):
                raise UserError(f"prompt {i} in {name}: its id must be text")
            pid = str(pid)
            if len(pid) > 200:
                raise UserError(f"prompt {i} in {name}: its id is longer than 200 characters")
            if not isinstance(tags, list) or not all(isinstance(t, str) and len(t) <= 200 for t in tags):
                raise UserError(f"prompt {i} in {name}: tags must be a list of strings (200 characters at most)")
        else:
            raise UserError(f"prompt {i} in {name} is not text (got {type(item).__name__})")
        if not isinstance(text, str):
            raise UserError(f"prompt {i} in {name} is not text (got {type(text).__name__})")
        if not text.strip():
            raise UserError(f"prompt {i} in {name} is empty")
        if len(text) > max_chars:
            raise UserError(f"prompt {i} in {name} has {len(text):,} characters; the limit is {max_chars:,} "
                            "(SLM_MAX_PROMPT_CHARS)")
        if pid in seen:
            raise UserError(f"prompt id {pid!r} appears twice in {name}")
        seen.add(pid)
        prompts.append({"id": pid, "text": text, "tags": list(tags)})
    return PromptSet(name=name, prompts=prompts)


def read_prompts(content: bytes | str, name: str) -> PromptSet:
    """A prompt set from a file's content (an upload, an edited text). Same checks as load_prompts."""
    from core.output import load_json
    return parse_prompts(load_json(content, name=name, what="prompt file"), name=name)


def load_prompts(path: str | Path) -> PromptSet:
    """Read and check a prompt file. UserError: too large (SLM_MAX_FILE_MB), unreadable, malformed, nested too
    deep (SLM_MAX_JSON_DEPTH), empty, too many prompts, or a prompt not text."""
    from core.output import load_json
    p = Path(path)
    return parse_prompts(load_json(p, what="prompt file"), name=p.name)


def shipped_prompt_sets() -> dict[str, Path]:
    """The prompt sets shipped in data/prompts (name -> path); other JSON there (expectations...) is left out."""
    from core.config import PROMPTS_DIR
    out = {}
    for f in sorted(Path(PROMPTS_DIR).glob("*.json")):
        try:
            load_prompts(f)
        except UserError:
            continue
        out[f.stem] = f
    return out


MODEL_CONFIG_FIELDS = {"capabilities": "list", "size_mb": "number", "license": "text", "version": "text",
                       "description": "text", "alias": "text", "id": "text", "name": "text"}


def load_models_config(path: str | Path) -> dict[str, dict]:
    """A workshop-style models.json: {alias: {"capabilities": [...], "size_mb": N, ...}}, checked whole before any
    model runs: `size_mb` a number of 0 or more, `capabilities` a list of strings, other known fields text.
    Unknown fields are kept (other tools' extras) but must hold plain values. UserError naming the file, the
    model and the field."""
    from core.output import load_json
    p = Path(path)
    data = load_json(p, what="models config")
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(f"models config {p} must map each model alias to an object "
                        '(e.g. {"phi-4-mini": {"capabilities": ["chat"], "size_mb": 2400}})')
    for alias, entry in data.items():
        if not alias.strip() or len(alias) > 200:
            raise UserError(f"models config {p}: model alias {alias[:40]!r} must be 1 to 200 characters")
        for key, value in entry.items():
            kind = MODEL_CONFIG_FIELDS.get(key)
            where = f"models config {p}: {alias}.{key}"
            if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise UserError(f"{where} must be a number of megabytes (0 or more), got {json.dumps(value)[:40]}")
            if kind == "list" and not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
                raise UserError(f"{where} must be a list of strings")
            if kind == "text" and not isinstance(value, str):
                raise UserError(f"{where} must be text, got {json.dumps(value)[:40]}")
    return data
