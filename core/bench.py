"""The benchmark runner: settings, prompt sets, warm-up, rounds, concurrency sweep, cancel, progress.

``run_benchmark(models, prompt_set, settings, progress=..., cancel=...)`` runs every model at every
concurrency level and stores each level (its requests and its run_models row) as soon as it ends.
A model that will not load gets failed rows with its error, and the others go on. Cancelling
(``cancel.set()``: the page's button, Ctrl-C in the CLI) or a model process that dies keeps every
finished request and marks the run interrupted.

Progress is an interface (``on_start / on_update / on_complete``) that knows nothing of the UI.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from core import metrics
from core.engines import Engine, EngineDied, LoadInfo, RequestOptions, RequestRecord, make_engine
from core.errors import UserError

_perf = time.perf_counter


# -- inputs ----------------------------------------------------------------------------------
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
        """From a row of core.models.list_models()."""
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
    {id, text, tags} objects, or {"prompts": [...]} holding either. UserError naming the problem."""
    if isinstance(data, dict) and isinstance(data.get("prompts"), list):
        data = data["prompts"]
    if not isinstance(data, list):
        raise UserError(f"prompt file {name} must hold a JSON list of prompts (strings or objects with a text)")
    if not data:
        raise UserError(f"prompt file {name} has no prompts")
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
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise UserError(f"prompt {i} in {name}: tags must be a list of strings")
        else:
            raise UserError(f"prompt {i} in {name} is not text (got {type(item).__name__})")
        if not isinstance(text, str):
            raise UserError(f"prompt {i} in {name} is not text (got {type(text).__name__})")
        if not text.strip():
            raise UserError(f"prompt {i} in {name} is empty")
        if pid in seen:
            raise UserError(f"prompt id {pid!r} appears twice in {name}")
        seen.add(pid)
        prompts.append({"id": pid, "text": text, "tags": list(tags)})
    return PromptSet(name=name, prompts=prompts)


def load_prompts(path: str | Path) -> PromptSet:
    """Read and check a prompt file. UserError: unreadable, malformed, empty, or a prompt not text."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read prompt file {p}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"prompt file {p} is not UTF-8 text") from exc
    if not text.strip():
        raise UserError(f"prompt file {p} is empty")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UserError(f"prompt file {p} is not valid JSON ({exc})") from exc
    return parse_prompts(data, name=p.name)


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


def load_models_config(path: str | Path) -> dict[str, dict]:
    """A workshop-style models.json: {alias: {"capabilities": [...], "size_mb": N, ...}}."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read models config {p}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UserError(f"models config {p} is not valid JSON ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, dict) for v in data.values()):
        raise UserError(f"models config {p} must map each model alias to an object "
                        '(e.g. {"phi-4-mini": {"capabilities": ["chat"], "size_mb": 2400}})')
    return data


# -- progress --------------------------------------------------------------------------------
@dataclass
class ModelProgress:
    model: str
    backend: str
    label: str
    phase: str = "waiting"           # waiting | loading | warmup | running | done | failed | interrupted
    concurrency: int | None = None
    done: int = 0                    # requests finished (warm-ups included), all levels
    total: int = 0
    failed: int = 0
    error: str | None = None
    started_at: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None


@dataclass
class RunProgress:
    run_id: str
    models: list[ModelProgress]
    started_at: float
    status: str = "running"

    @property
    def done(self) -> int:
        return sum(m.done for m in self.models)

    @property
    def total(self) -> int:
        return sum(m.total for m in self.models)

    def eta_s(self) -> float | None:
        done_models = [m for m in self.models if m.done and m.elapsed_s > 0]
        if not done_models:
            return None
        rate = sum(m.elapsed_s for m in done_models) / sum(m.done for m in done_models)
        return sum((m.total - m.done) * rate for m in self.models if m.phase not in ("done", "failed", "interrupted"))


class Progress:
    """Receives progress; the CLI prints it, the page draws it. Implementations must be cheap."""

    def on_start(self, progress: RunProgress) -> None: ...

    def on_update(self, progress: RunProgress, model: ModelProgress) -> None: ...

    def on_complete(self, outcome: "RunOutcome") -> None: ...


@dataclass
class RunOutcome:
    run_id: str
    status: str                      # completed | interrupted
    results: list[dict]
    reason: str | None = None        # why interrupted


# -- environment -----------------------------------------------------------------------------
def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def capture_environment() -> dict:
    import psutil
    return {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {n: _version(n) for n in ("foundry-local-sdk", "onnxruntime", "onnxruntime-genai-core",
                                              "llama_cpp_python", "openai", "duckdb", "numpy")},
    }


# -- the runner ------------------------------------------------------------------------------
def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return exc.one_line()
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


class _LevelCancelled(Exception):
    pass


class Runner:
    def __init__(self, models: list[ModelSpec], prompt_set: PromptSet, settings: Settings, *,
                 progress: Progress | None = None, cancel: threading.Event | None = None,
                 run_id: str | None = None, engine_factory: Callable[[ModelSpec], Engine] | None = None,
                 store: bool = True):
        if not models:
            raise UserError("no model to benchmark")
        self.models = models
        self.prompt_set = prompt_set
        self.settings = settings.validate()
        self.progress = progress or Progress()
        self.cancel = cancel or threading.Event()
        self.run_id = run_id or new_run_id()
        self.engine_factory = engine_factory or default_engine
        self.store = store
        self.results: list[dict] = []
        self.interrupted_reason: str | None = None
        per_level = self.settings.warmup + self.settings.rounds * len(prompt_set.prompts)
        self.state = RunProgress(self.run_id, [
            ModelProgress(m.model, m.backend, m.name, total=per_level * len(self.settings.concurrency))
            for m in models], started_at=_perf())

    # public ------------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        env = capture_environment()
        if self.store:
            from core.store import bench as db
            db.mark_stale_runs()    # runs left 'running' a day ago by a process that died
            db.create_run(self.run_id, prompt_set=self.prompt_set.name, prompt_set_hash=self.prompt_set.hash,
                          settings=asdict(self.settings), environment=env, prompts=self.prompt_set.prompts)
        self.progress.on_start(self.state)
        try:
            for position, (spec, mp) in enumerate(zip(self.models, self.state.models)):
                if self.cancel.is_set():
                    break
                self._run_model(position, spec, mp, env)
        except BaseException as exc:
            self.interrupted_reason = self.interrupted_reason or _one_line(exc)
            raise
        finally:
            cancelled = self.cancel.is_set()
            if cancelled and not self.interrupted_reason:
                self.interrupted_reason = "cancelled"
            status = "interrupted" if self.interrupted_reason else "completed"
            self.state.status = status
            for mp in self.state.models:
                if mp.phase in ("waiting", "loading", "warmup", "running"):
                    mp.phase = "interrupted" if status == "interrupted" else mp.phase
            if self.store:
                from core.store import bench as db
                db.finish_run(self.run_id, status, self.interrupted_reason)
        outcome = RunOutcome(self.run_id, status, self.results, self.interrupted_reason)
        self.progress.on_complete(outcome)
        return outcome

    # one model ---------------------------------------------------------------------------
    def _run_model(self, position: int, spec: ModelSpec, mp: ModelProgress, env: dict) -> None:
        mp.phase, mp.started_at = "loading", _perf()
        self._update(mp)
        base = {"run_id": self.run_id, "model": spec.model, "backend": spec.backend, "label": spec.name,
                "position": position, "endpoint": spec.endpoint, "license": spec.license, "disk_mb": spec.disk_mb,
                "model_version": spec.version, "execution_provider": spec.execution_provider}
        engine = None
        try:
            engine = self.engine_factory(spec)
            info = engine.open()
        except Exception as exc:  # a model that will not load: failed rows, the others go on
            if engine is not None:
                try:
                    engine.close()
                except Exception:
                    pass
            err = f"load failed: {_one_line(exc)}"
            mp.phase, mp.error = "failed", err
            mp.done = mp.total
            self._update(mp)
            for level in self.settings.concurrency:
                self._save(dict(base, concurrency=level, status="failed", error=err,
                                environment=self._model_env(env, spec, None)), [])
            return
        try:
            env_m = self._model_env(env, spec, info)
            base.update(model_version=info.model_version or spec.version,
                        execution_provider=info.execution_provider or spec.execution_provider, pid=info.pid,
                        load_s=info.load_s, rss_before_mb=info.rss_before_mb,
                        rss_after_load_mb=info.rss_after_load_mb, environment=env_m, notes=info.notes)
            for level in self.settings.concurrency:
                if self.cancel.is_set():
                    break
                mp.concurrency = level
                try:
                    self._run_level(engine, spec, mp, level, base)
                except EngineDied as exc:
                    self.interrupted_reason = f"{spec.name}: {_one_line(exc)}"
                    mp.phase, mp.error = "interrupted", _one_line(exc)
                    self._update(mp)
                    return
            if not self.cancel.is_set():
                mp.phase = "done"
            else:
                mp.phase = "interrupted"
            self._update(mp)
        finally:
            try:
                engine.close()
            except Exception:
                pass

    def _model_env(self, env: dict, spec: ModelSpec, info: LoadInfo | None) -> dict:
        return {**env, "model_id": spec.model, "backend": spec.backend, "endpoint": spec.endpoint,
                "model_version": (info.model_version if info else None) or spec.version,
                "execution_provider": (info.execution_provider if info else None) or spec.execution_provider,
                "runtime": info.runtime if info else {}, "prompt_set_hash": self.prompt_set.hash}

    # one level ---------------------------------------------------------------------------
    def _run_level(self, engine: Engine, spec: ModelSpec, mp: ModelProgress, level: int, base: dict) -> None:
        engine.prepare_level(level)
        s = self.settings
        opts = s.request_options()
        prompts = self.prompt_set.prompts
        warm = [(prompts[i % len(prompts)], 0, True) for i in range(s.warmup)]   # round 0: warm-up
        measured = [(p, r, False) for r in range(1, s.rounds + 1) for p in prompts]
        results: list[tuple[dict, int, bool, RequestRecord, float]] = []
        died: list[BaseException] = []
        stats_before = stats_after = None

        async def worker(items, queued_at):
            while items:
                if self.cancel.is_set():
                    return
                prompt, rnd, is_warm = items.pop(0)
                rec = RequestRecord(queued_at=queued_at if queued_at is not None else _perf())
                await engine.arequest([{"role": "user", "content": prompt["text"]}], opts, rec)
                done_at = _perf()
                results.append((prompt, rnd, is_warm, rec, done_at))
                mp.done += 1
                if rec.error is not None and not is_warm:
                    mp.failed += 1
                self._tick(mp)

        async def watch(tasks):
            while not all(t.done() for t in tasks):
                if self.cancel.is_set():
                    for t in tasks:
                        t.cancel()
                    return
                await asyncio.sleep(0.05)

        async def phase(items, n_workers, queued_at):
            tasks = [asyncio.create_task(worker(items, queued_at)) for _ in range(n_workers)]
            watcher = asyncio.create_task(watch(tasks))
            try:
                done = await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                watcher.cancel()
            for d in done:
                if isinstance(d, EngineDied):
                    died.append(d)
                elif isinstance(d, BaseException) and not isinstance(d, asyncio.CancelledError):
                    raise d

        async def main():
            nonlocal stats_before, stats_after
            loop = asyncio.get_running_loop()
            if not engine.is_async:
                loop.set_default_executor(ThreadPoolExecutor(max_workers=max(level, 1),
                                                             thread_name_prefix="bench-request"))
            level_start = _perf()
            try:
                if warm:
                    mp.phase = "warmup"
                    self._update(mp)
                    await phase(list(warm), 1, None)
                if died or self.cancel.is_set():
                    return level_start
                mp.phase = "running"
                self._update(mp)
                stats_before = engine.process_stats()
                level_start = _perf()
                await phase(list(measured), level, level_start)   # all requests eligible from level start
                stats_after = engine.process_stats()
            finally:
                engine.finish_level()
            return level_start

        level_start = asyncio.run(main())
        self._finish_level(engine, spec, mp, level, base, results, level_start, stats_before, stats_after,
                           died[0] if died else None)
        if died:
            raise died[0]

    def _finish_level(self, engine, spec, mp, level, base, results, level_start, st0, st1, died) -> None:
        # token counts with the model's tokenizer happen here, outside every timer
        if engine.count_tokens is not None:
            for _, _, _, rec, _ in results:
                if rec.usage_completion_tokens is None and rec.text_parts:
                    try:
                        rec.tokenizer_completion_tokens = engine.count_tokens(rec.output_text)
                    except Exception:
                        pass
        rows = []
        for prompt, rnd, is_warm, rec, done_at in results:
            row = metrics.request_row(rec, level_start=level_start, done_at=done_at)
            row.update(request_id=uuid.uuid4().hex, run_id=self.run_id, model=spec.model, backend=spec.backend,
                       concurrency=level, prompt_id=prompt["id"], round=rnd, warmup=is_warm, outlier=False)
            rows.append(row)
        measured = [r for r in rows if not r["warmup"]]
        for r, flag in zip(measured, metrics.outlier_flags(measured)):
            r["outlier"] = flag
        planned = self.settings.rounds * len(self.prompt_set.prompts)
        interrupted = died is not None or len(measured) < planned
        tokens = metrics.output_tokens(measured)
        cpu_s = (st1["cpu_s"] - st0["cpu_s"]) if (st0 and st1 and st0.get("cpu_s") is not None
                                                  and st1.get("cpu_s") is not None) else None
        if st1 is None and died is None:
            st1 = engine.process_stats()
        starts = [r["start_offset_s"] for r in measured if r["start_offset_s"] is not None]
        ends = [r["end_offset_s"] for r in measured if r["end_offset_s"] is not None]
        error = None
        if died is not None:
            error = f"interrupted: {_one_line(died)}"
        elif interrupted:
            error = f"interrupted after {len(measured)} of {planned} requests"
        run_model = dict(
            base, concurrency=level, status="interrupted" if interrupted else "ok", error=error,
            peak_rss_mb=(st1 or {}).get("peak_rss_mb"), cpu_s=cpu_s,
            cpu_s_per_token=metrics.cpu_s_per_token(cpu_s, tokens),
            throughput_tok_s=metrics.aggregate_throughput_tok_s(measured) if measured else None,
            token_count_source=metrics.token_count_source(measured), output_tokens=tokens,
            window_s=(max(ends) - min(starts)) if starts and ends else None)
        if self.store:
            self._save(run_model, rows)
        else:
            self.results.append(metrics.level_result(
                measured, model=spec.model, backend=spec.backend, concurrency=level,
                status="ok" if not interrupted else "failed", error=error, load=run_model))
        mp.elapsed_s = _perf() - (mp.started_at or _perf())
        self._update(mp)
        self.last_rows = rows

    def _save(self, run_model: dict, rows: list[dict]) -> None:
        if self.store:
            from core.store import bench as db
            db.save_level(run_model, rows)
            measured = [r for r in rows if not r["warmup"]]
            self.results.append(metrics.level_result(
                measured, model=run_model["model"], backend=run_model["backend"],
                concurrency=run_model["concurrency"], status="ok" if run_model["status"] == "ok" else "failed",
                error=run_model.get("error"), load=run_model))
        else:
            self.results.append(metrics.level_result(
                [], model=run_model["model"], backend=run_model["backend"], concurrency=run_model["concurrency"],
                status="failed", error=run_model.get("error"), load=run_model))

    # progress ------------------------------------------------------------------------------
    def _tick(self, mp: ModelProgress) -> None:
        now = _perf()
        mp.elapsed_s = now - (mp.started_at or now)
        if mp.done:
            mp.eta_s = mp.elapsed_s / mp.done * (mp.total - mp.done)
        self.progress.on_update(self.state, mp)

    def _update(self, mp: ModelProgress) -> None:
        if mp.started_at is not None:
            mp.elapsed_s = _perf() - mp.started_at
        if mp.phase in ("done", "failed", "interrupted"):
            mp.eta_s = 0.0 if mp.phase == "done" else None
        self.progress.on_update(self.state, mp)


def default_engine(spec: ModelSpec) -> Engine:
    if spec.backend == "llamacpp":
        from core.engines.llamacpp import LlamaCppEngine, resolve_gguf
        return LlamaCppEngine(spec.path or resolve_gguf(spec.model))
    if spec.backend == "openai":
        from core.engines.http import HttpEngine
        if not spec.endpoint:
            raise UserError(f"model {spec.name!r}: an OpenAI-compatible engine needs an endpoint URL")
        from core.engines.http import local_tokenizer
        return HttpEngine(spec.model, spec.endpoint, api_key_env=spec.api_key_env, server_pid=spec.server_pid,
                          count_tokens=local_tokenizer(spec.model))
    return make_engine(spec.backend, spec.model, model_row={"version": spec.version,
                                                           "execution_provider": spec.execution_provider})


def run_benchmark(models: list[ModelSpec], prompt_set: PromptSet, settings: Settings, **kwargs) -> RunOutcome:
    return Runner(models, prompt_set, settings, **kwargs).run()
