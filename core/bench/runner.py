"""The benchmark runner: every model at every concurrency level, with cancel and progress.

``run_benchmark(models, prompt_set, settings, progress=..., cancel=...)`` runs every model at every
concurrency level. Each request row is stored as it completes (a kill loses only the requests in
flight); a level's run_models row is stored as 'running' when it starts and with its numbers when it
ends. A model that will not load gets failed rows with its error, and the others go on. Cancelling
(``cancel.set()``: the page's button, Ctrl-C in the CLI) or a model process that dies keeps every
finished request and marks the run interrupted. ``resume`` (see ``core.bench.resume``) runs only the
requests a stored run is missing, as a new sitting (``segment``) of the same run.

The runner only orchestrates; each concern is its own small piece:
``inputs`` (settings, models, prompts), ``schedule`` (one level's requests on N slots),
``progress`` (what the CLI prints and the page draws), ``persist`` (where results go),
``environment`` (what is recorded about the machine), ``core.metrics`` (every number).
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict
from typing import Callable

from core import metrics
from core.bench.environment import capture_environment, model_environment
from core.bench.inputs import ModelSpec, PromptSet, Settings
from core.bench.persist import Recorder, StoreRecorder
from core.bench.progress import ModelProgress, Progress, RunOutcome, RunProgress, Tracker
from core.bench.schedule import Item, LevelOutcome, plan, run_level
from core.engines import Engine, EngineDied, RequestRecord, make_engine
from core.errors import UserError

_perf = time.perf_counter


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return exc.one_line()
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


class Runner:
    def __init__(self, models: list[ModelSpec], prompt_set: PromptSet, settings: Settings, *,
                 progress: Progress | None = None, cancel: threading.Event | None = None,
                 run_id: str | None = None, engine_factory: Callable[[ModelSpec], Engine] | None = None,
                 store: bool = True, recorder: Recorder | None = None, resume: dict | None = None,
                 segment: int = 0):
        if not models:
            raise UserError("no model to benchmark")
        self.models = models
        self.prompt_set = prompt_set
        self.settings = settings.validate()
        self.cancel = cancel or threading.Event()
        self.run_id = run_id or new_run_id()
        self.engine_factory = engine_factory or default_engine
        self.recorder = recorder or (StoreRecorder() if store else Recorder())
        self.results: list[dict] = []
        self.interrupted_reason: str | None = None
        # resume: (model, backend, concurrency) -> {"rows": stored measured rows, "run_model": stored level row}
        self.resume = resume
        self.segment = segment
        state = RunProgress(self.run_id, [
            ModelProgress(m.model, m.backend, m.name,
                          total=sum(self.settings.warmup + len(self._todo(m, level))
                                    for level in self.settings.concurrency if self._todo(m, level)))
            for m in models], started_at=_perf())
        self.tracker = Tracker(state, progress)
        self.state = state

    def _previous(self, spec: ModelSpec, level: int) -> dict:
        return (self.resume or {}).get((spec.model, spec.backend, level)) or {"rows": [], "run_model": None}

    def _todo(self, spec: ModelSpec, level: int) -> list[Item]:
        """The measured requests of a level still to run (all of them, unless resuming)."""
        _, measured = plan(self.prompt_set.prompts, self.settings.rounds, self.settings.warmup)
        if self.resume is None:
            return measured
        done = {(r["prompt_id"], int(r["round"])) for r in self._previous(spec, level)["rows"]}
        return [i for i in measured if (i.prompt["id"], i.round) not in done]

    # public ------------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        from core.bench.resume import spec_record
        env = capture_environment()
        self.recorder.start_run(self.run_id, prompt_set=self.prompt_set, settings=asdict(self.settings),
                                environment=env, specs=[spec_record(m) for m in self.models],
                                resume=self.resume is not None)
        self.tracker.start()
        try:
            for position, (spec, mp) in enumerate(zip(self.models, self.state.models)):
                if self.cancel.is_set():
                    break
                if not any(self._todo(spec, level) for level in self.settings.concurrency):
                    self.tracker.phase(mp, "done")   # resumed: nothing missing for this model
                    continue
                self._run_model(position, spec, mp, env)
        except BaseException as exc:
            self.interrupted_reason = self.interrupted_reason or _one_line(exc)
            raise
        finally:
            if self.cancel.is_set() and not self.interrupted_reason:
                self.interrupted_reason = "cancelled"
            status = "interrupted" if self.interrupted_reason else "completed"
            self.tracker.settle(status)
            self.recorder.finish_run(self.run_id, status, self.interrupted_reason)
        outcome = RunOutcome(self.run_id, status, self.results, self.interrupted_reason)
        self.tracker.complete(outcome)
        return outcome

    # one model ---------------------------------------------------------------------------
    def _run_model(self, position: int, spec: ModelSpec, mp: ModelProgress, env: dict) -> None:
        self.tracker.phase(mp, "loading")
        base = {"run_id": self.run_id, "model": spec.model, "backend": spec.backend, "label": spec.name,
                "position": position, "endpoint": spec.endpoint, "license": spec.license, "disk_mb": spec.disk_mb,
                "model_version": spec.version, "execution_provider": spec.execution_provider,
                "pid_source": None}
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
            mp.done = mp.total
            self.tracker.phase(mp, "failed", err)
            env_m = model_environment(env, spec, None, self.prompt_set.hash)
            for level in self.settings.concurrency:
                if self._todo(spec, level):
                    self._keep(dict(base, concurrency=level, status="failed", error=err, environment=env_m), [],
                               self._previous(spec, level)["rows"])
            return
        try:
            base.update(model_version=info.model_version or spec.version,
                        execution_provider=info.execution_provider or spec.execution_provider, pid=info.pid,
                        load_s=info.load_s, rss_before_mb=info.rss_before_mb,
                        rss_after_load_mb=info.rss_after_load_mb,
                        environment=model_environment(env, spec, info, self.prompt_set.hash), notes=info.notes,
                        pid_source=(getattr(engine, "pid_source", None) or info.pid_source
                                    or ("launched" if info.pid else "unknown")))
            for level in self.settings.concurrency:
                if self.cancel.is_set():
                    break
                if not self._todo(spec, level):
                    continue
                mp.concurrency = level
                died = self._run_level(engine, spec, mp, level, base)
                if died is not None:
                    self.interrupted_reason = f"{spec.name}: {_one_line(died)}"
                    self.tracker.phase(mp, "interrupted", _one_line(died))
                    return
            self.tracker.phase(mp, "interrupted" if self.cancel.is_set() else "done")
        finally:
            try:
                engine.close()
            except Exception:
                pass

    # one level ---------------------------------------------------------------------------
    def _run_level(self, engine: Engine, spec: ModelSpec, mp: ModelProgress, level: int,
                   base: dict) -> BaseException | None:
        s = self.settings
        warm, _ = plan(self.prompt_set.prompts, s.rounds, s.warmup)
        measured = self._todo(spec, level)
        previous = self._previous(spec, level)
        started = dict(previous["run_model"] or {}, **base)
        self.recorder.save_level(dict(started, concurrency=level, status="running", error=None), [])
        out = LevelOutcome()
        ids: dict[int, str] = {}

        def on_done(item: Item, rec: RequestRecord, done_at: float) -> None:
            mp.done += 1
            if rec.error is not None and not item.warmup:
                mp.failed += 1
            ids[id(rec)] = uuid.uuid4().hex
            # stored now, as it is (token counts by tokenizer and outlier flags are added at the level's end)
            self.recorder.save_request(self._row(spec, level, item, rec, out.level_start, done_at, ids[id(rec)]))
            self.tracker.tick(mp)

        run_level(engine, warm, measured, level, s.request_options(), self.cancel, on_done,
                  lambda name: self.tracker.phase(mp, name), out=out)
        self._finish_level(engine, spec, mp, level, base, out, ids, previous)
        return out.died

    def _row(self, spec: ModelSpec, level: int, item: Item, rec: RequestRecord, level_start: float,
             done_at: float, request_id: str) -> dict:
        row = metrics.request_row(rec, level_start=level_start, done_at=done_at)
        row.update(request_id=request_id, run_id=self.run_id, model=spec.model, backend=spec.backend,
                   concurrency=level, prompt_id=item.prompt["id"], round=item.round, warmup=item.warmup,
                   outlier=False, segment=self.segment)
        return row

    def _finish_level(self, engine: Engine, spec: ModelSpec, mp: ModelProgress, level: int, base: dict,
                      out: LevelOutcome, ids: dict[int, str], previous: dict) -> None:
        # token counts with the model's tokenizer happen here, outside every timer
        if engine.count_tokens is not None:
            for _, rec, _ in out.done:
                if rec.usage_completion_tokens is None and rec.text_parts:
                    try:
                        rec.tokenizer_completion_tokens = engine.count_tokens(rec.output_text)
                    except Exception:
                        pass
        count_prompt = getattr(engine, "count_prompt_tokens", None)   # engines that send no usage (llama.cpp)
        for item, rec, _ in (out.done if count_prompt else ()):
            if rec.prompt_tokens is None:
                rec.prompt_tokens = count_prompt([{"role": "user", "content": item.prompt["text"]}])
        rows = [self._row(spec, level, item, rec, out.level_start, done_at, ids.get(id(rec)) or uuid.uuid4().hex)
                for item, rec, done_at in out.done]
        new = [r for r in rows if not r["warmup"]]
        if engine.engine_wait == "inferred":
            metrics.infer_engine_wait(new)
        measured = list(previous["rows"]) + new        # a resumed level: the earlier sittings' rows too
        for r, flag in zip(measured, metrics.outlier_flags(measured)):
            r["outlier"] = flag
        planned = self.settings.rounds * len(self.prompt_set.prompts)
        interrupted = out.died is not None or len(measured) < planned
        tokens = metrics.output_tokens(measured)
        prev = previous["run_model"] or {}

        def delta(a, b):
            return (b["cpu_s"] - a["cpu_s"]) if (a and b and a.get("cpu_s") is not None
                                                 and b.get("cpu_s") is not None) else None

        def plus(earlier, now):   # a resumed level: CPU of every sitting
            return now if not previous["rows"] else (None if earlier is None or now is None else earlier + now)

        st0, st1 = out.stats_before, out.stats_after
        cpu_s = plus(prev.get("cpu_s"), delta(st0, st1))
        observer_cpu_s = plus(prev.get("observer_cpu_s"), delta(out.observer_before, out.observer_after))
        if st1 is None and out.died is None:
            st1 = engine.process_stats()
        peak = (st1 or {}).get("peak_rss_mb")
        if previous["rows"] and prev.get("peak_rss_mb") is not None:
            peak = None if peak is None else max(peak, prev["peak_rss_mb"])
        error = None
        if out.died is not None:
            error = f"interrupted: {_one_line(out.died)}"
        elif interrupted:
            error = f"interrupted after {len(measured)} of {planned} requests"
        for k in ("load_s", "rss_before_mb", "rss_after_load_mb"):   # the first sitting's load, when it had one
            if previous["rows"] and prev.get(k) is not None:
                base = dict(base, **{k: prev[k]})
        run_model = dict(
            base, concurrency=level, status="interrupted" if interrupted else "ok", error=error,
            peak_rss_mb=peak, cpu_s=cpu_s, observer_cpu_s=observer_cpu_s,
            cpu_s_per_token=metrics.cpu_s_per_token(cpu_s, tokens),
            throughput_tok_s=metrics.aggregate_throughput_tok_s(measured) if measured else None,
            token_count_source=metrics.token_count_source(measured), output_tokens=tokens,
            window_s=metrics.window_s(measured) if measured else None)
        self._keep(run_model, rows + [r for r in previous["rows"]], previous["rows"])
        self.tracker.phase(mp)
        self.last_rows = rows   # the level just measured (perf scripts read it)

    def _keep(self, run_model: dict, rows: list[dict], previous_rows: list[dict] | None = None) -> None:
        """Hand a level to the recorder, and add its result (the CLI --json shape) to ``results``."""
        self.recorder.save_level(run_model, rows)
        measured = [r for r in rows if not r["warmup"]]
        if not rows and previous_rows:
            measured = list(previous_rows)
        self.results.append(metrics.level_result(
            measured, model=run_model["model"], backend=run_model["backend"],
            concurrency=run_model["concurrency"], status=run_model["status"],
            error=run_model.get("error"), load=run_model))


def default_engine(spec: ModelSpec) -> Engine:
    if spec.backend == "llamacpp":
        from core.engines.llamacpp import LlamaCppEngine, resolve_gguf
        return LlamaCppEngine(spec.path or resolve_gguf(spec.model))
    if spec.backend == "openai":
        from core.engines.http import HttpEngine
        if not spec.endpoint:
            raise UserError(f"model {spec.name!r}: an OpenAI-compatible engine needs an endpoint URL")
        from core.engines.base import resolve_server_pid
        from core.engines.http import local_tokenizer
        pid, source = resolve_server_pid(spec.endpoint, spec.server_pid)
        engine = HttpEngine(spec.model, spec.endpoint, api_key_env=spec.api_key_env, server_pid=pid,
                            count_tokens=local_tokenizer(spec.model))
        engine.pid_source = source
        return engine
    return make_engine(spec.backend, spec.model, model_row={"version": spec.version,
                                                           "execution_provider": spec.execution_provider})


def run_benchmark(models: list[ModelSpec], prompt_set: PromptSet, settings: Settings, **kwargs) -> RunOutcome:
    return Runner(models, prompt_set, settings, **kwargs).run()
