"""The benchmark runner: every model at every concurrency level, with cancel and progress.

``run_benchmark(models, prompt_set, settings, progress=..., cancel=...)`` runs every model at every
concurrency level. Each request row is stored as it completes (a kill loses only the requests in
flight); a level's run_models row is stored as 'running' when it starts and with its numbers when it
ends. A model that will not load gets failed rows with its error, and the others go on. Cancelling
(``cancel.set()``: the page's button, Ctrl-C in the CLI) or a model process that dies keeps every
finished request and marks the run interrupted. ``resume`` (see ``core.bench.run.resume``) runs only the
requests a stored run is missing, as a new sitting (``segment``) of the same run.

Candidates run interleaved by default (``core.bench.run.order``): every model is loaded first and kept loaded,
then each level runs round by round, the models in rotating order (round 1: A B C, round 2: B C A), each
model's turn being its requests of that round (its warm-up before its first turn of the level). Each
request row keeps its ``turn`` and ``turn_position``. Blocked (``Settings.order``, or models that do not
fit in memory together): one model at a time, one turn per level. Around each turn's measured window the
noise meter (``core.bench.conditions.noise``) and the energy meter (``core.bench.conditions.energy``) read their counters; a
level's row carries both (``noisy``, ``noise``, ``energy``).

The runner only orchestrates; each concern is its own small piece:
``inputs`` (settings, models, prompts), ``schedule`` (one level's requests on N slots),
``order`` (interleaved or blocked), ``progress`` (what the CLI prints and the page draws), ``persist``
(where results go), ``environment`` (what is recorded about the machine), ``noise`` and ``energy`` (the
conditions of each level), ``core.metrics`` (every number).
"""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable

from core import metrics
from core.bench.conditions.energy import IDLE_BASELINE_S, EnergyMeter
from core.bench.conditions.environment import capture_environment, model_environment, power_state
from core.bench.run.inputs import ModelSpec, PromptSet, Settings
from core.bench.conditions.noise import NoiseMeter, level_noise, own_pids
from core.bench.run.order import choose_order, rotation
from core.bench.run.persist import Recorder, StoreRecorder
from core.bench.run.progress import ModelProgress, Progress, RunOutcome, RunProgress, Tracker
from core.bench.run.schedule import Item, LevelLoop, LevelOutcome, plan, run_level
from core.engines import Engine, RequestRecord, open_engine
from core.errors import UserError, one_line

_perf = time.perf_counter


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _one_line(exc: BaseException) -> str:
    """A failure as stored and shown: a UserError's own line, anything else with its type (core.errors.one_line)."""
    return exc.one_line() if isinstance(exc, UserError) else one_line(f"{type(exc).__name__}: {exc}", whole=True)


@dataclass
class _Level:
    """One model x concurrency level as it runs, over one turn (blocked) or one per round (interleaved)."""
    spec: ModelSpec
    mp: ModelProgress
    position: int
    level: int
    base: dict
    previous: dict
    todo: list[Item]
    done: list[tuple] = field(default_factory=list)   # (item, rec, done_at, turn_start, turn, turn_position, id)
    cpu_s: float | None = 0.0           # the model process's CPU over the measured windows (None: unknown)
    observer_cpu_s: float | None = 0.0
    stats_after: dict | None = None
    died: BaseException | None = None
    turns: int = 0
    noise: list[dict] = field(default_factory=list)
    energy: list[dict | None] = field(default_factory=list)
    idle_w: float | None = None
    loop: LevelLoop | None = None       # the level's event loop (its connections stay open between turns)


class Runner:
    def __init__(self, models: list[ModelSpec], prompt_set: PromptSet, settings: Settings, *,
                 progress: Progress | None = None, cancel: threading.Event | None = None,
                 run_id: str | None = None, engine_factory: Callable[[ModelSpec], Engine] | None = None,
                 store: bool = True, recorder: Recorder | None = None, resume: dict | None = None,
                 segment: int = 0, sys_root: str = "/sys", proc_root: str = "/proc",
                 energy_baseline_s: float = IDLE_BASELINE_S, available_mb: float | None = None):
        if not models:
            raise UserError("no model to benchmark")
        self.models = models
        self.prompt_set = prompt_set
        self.settings = settings.validate()
        self.cancel = cancel or threading.Event()
        self.run_id = run_id or new_run_id()
        self.engine_factory = engine_factory or open_engine
        self.recorder = recorder or (StoreRecorder() if store else Recorder())
        self.results: list[dict] = []
        self._result_keys: list[tuple] = []
        self.interrupted_reason: str | None = None
        # resume: (model, backend, concurrency) -> {"rows": stored measured rows, "run_model": stored level row}
        self.resume = resume
        self.segment = segment
        self.sys_root = sys_root
        self.noise = NoiseMeter(proc_root=proc_root, sys_root=sys_root)
        self.energy = EnergyMeter(sys_root, baseline_s=energy_baseline_s)
        self.schedule = choose_order(models, self.settings.order, available_mb)
        self._turn_seq = 0
        self._pids: list[int] = []
        state = RunProgress(self.run_id, [
            ModelProgress(m.model, m.backend, m.name,
                          total=sum(self.settings.warmup + len(self._todo(m, level))
                                    for level in self.settings.concurrency if self._todo(m, level)))
            for m in models], started_at=_perf())
        self.tracker = Tracker(state, progress)
        self.state = state

    def _previous(self, spec: ModelSpec, level: int) -> dict:
        return (self.resume or {}).get((spec.model, spec.backend, level)) or {"rows": [], "run_model": None}

    def prompts_for(self, spec: ModelSpec) -> PromptSet:
        """The prompts ``spec`` runs: the run's set (a length sweep gives each model its own)."""
        return self.prompt_set

    def _todo(self, spec: ModelSpec, level: int) -> list[Item]:
        """The measured requests of a level still to run (all of them, unless resuming)."""
        _, measured = plan(self.prompts_for(spec).prompts, self.settings.rounds, self.settings.warmup)
        if self.resume is None:
            return measured
        done = {(r["prompt_id"], int(r["round"])) for r in self._previous(spec, level)["rows"]}
        return [i for i in measured if (i.prompt["id"], i.round) not in done]

    # public ------------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        from core.bench.run.resume import spec_record
        env = dict(capture_environment(self.sys_root), schedule=self.schedule)
        self.recorder.start_run(self.run_id, prompt_set=self.prompt_set, settings=asdict(self.settings),
                                environment=env, specs=[spec_record(m) for m in self.models],
                                resume=self.resume is not None)
        self.tracker.start()
        try:
            if self.schedule["order"] == "interleaved":
                self._run_interleaved(env)
            else:
                for position, spec, mp in self._models_to_run():
                    self._run_model(position, spec, mp, env)
        except BaseException as exc:
            self.interrupted_reason = self.interrupted_reason or _one_line(exc)
            raise
        finally:
            if self.cancel.is_set() and not self.interrupted_reason:
                self.interrupted_reason = "cancelled"
            status = "interrupted" if self.interrupted_reason else "completed"
            self.tracker.settle(status)
            try:
                self.recorder.end_environment(self.run_id, power_state(self.sys_root))
            except Exception:
                pass   # the end state is a record, never a reason to lose the run
            self.recorder.finish_run(self.run_id, status, self.interrupted_reason)
        order = sorted(range(len(self.results)), key=lambda i: self._result_keys[i])
        self.results = [self.results[i] for i in order]   # the store's order: model position, then level
        outcome = RunOutcome(self.run_id, status, self.results, self.interrupted_reason)
        self.tracker.complete(outcome)
        return outcome

    # loading -----------------------------------------------------------------------------
    def _models_to_run(self):
        """(position, spec, progress) of each model with requests to run, until a cancel."""
        for position, (spec, mp) in enumerate(zip(self.models, self.state.models)):
            if self.cancel.is_set():
                return
            if not any(self._todo(spec, level) for level in self.settings.concurrency):
                self.tracker.phase(mp, "done")   # resumed: nothing missing for this model
                continue
            yield position, spec, mp

    def _open(self, position: int, spec: ModelSpec, mp: ModelProgress, env: dict) -> tuple[Engine, dict] | None:
        """Load a model: (engine, the fields every level row of it carries), or None (failed rows stored)."""
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
                _close(engine)
            err = f"load failed: {_one_line(exc)}"
            mp.done = mp.total
            self.tracker.phase(mp, "failed", err)
            env_m = model_environment(env, spec, None, self.prompts_for(spec).hash)
            for level in self.settings.concurrency:
                if self._todo(spec, level):
                    self._keep(dict(base, concurrency=level, status="failed", error=err, environment=env_m), [],
                               self._previous(spec, level)["rows"])
            return None
        base.update(model_version=info.model_version or spec.version,
                    execution_provider=info.execution_provider or spec.execution_provider, pid=info.pid,
                    load_s=info.load_s, rss_before_mb=info.rss_before_mb,
                    rss_after_load_mb=info.rss_after_load_mb,
                    environment=model_environment(env, spec, info, self.prompts_for(spec).hash), notes=info.notes,
                    pid_source=(getattr(engine, "pid_source", None) or info.pid_source
                                or ("launched" if info.pid else "unknown")))
        return engine, base

    # blocked: one model ------------------------------------------------------------------
    def _run_model(self, position: int, spec: ModelSpec, mp: ModelProgress, env: dict) -> None:
        opened = self._open(position, spec, mp, env)
        if opened is None:
            return
        engine, base = opened
        try:
            self._pids = own_pids([base.get("pid")])
            for level in self.settings.concurrency:
                if self.cancel.is_set():
                    break
                todo = self._todo(spec, level)
                if not todo:
                    continue
                mp.concurrency = level
                lv = self._begin_level(spec, mp, position, level, base, todo)
                lv.idle_w = self.energy.baseline(self.cancel)
                self._turn(engine, lv, todo, 0)
                self._finish_level(engine, lv)
                if lv.died is not None:
                    self._died(lv)
                    return
            self.tracker.phase(mp, "interrupted" if self.cancel.is_set() else "done")
        finally:
            _close(engine)

    # interleaved: every model, round by round --------------------------------------------
    def _run_interleaved(self, env: dict) -> None:
        opened: dict[int, tuple[Engine, dict]] = {}
        try:
            for position, spec, mp in self._models_to_run():
                o = self._open(position, spec, mp, env)
                if o is not None:
                    opened[position] = o
                    self.tracker.phase(mp, "waiting")
            self._pids = own_pids([base.get("pid") for _, base in opened.values()])
            alive = set(opened)
            for level in self.settings.concurrency:
                if self.cancel.is_set():
                    break
                levels: dict[int, _Level] = {}
                for i in sorted(alive):
                    todo = self._todo(self.models[i], level)
                    if todo:
                        levels[i] = self._begin_level(self.models[i], self.state.models[i], i, level,
                                                      opened[i][1], todo)
                if not levels:
                    continue
                idle_w = self.energy.baseline(self.cancel)
                for rnd in sorted({it.round for lv in levels.values() for it in lv.todo}):
                    for turn_position, i in enumerate(rotation([i for i in levels if i in alive], rnd)):
                        if self.cancel.is_set():
                            break
                        lv = levels[i]
                        items = [it for it in lv.todo if it.round == rnd]
                        if not items:
                            continue
                        lv.idle_w = idle_w
                        lv.mp.concurrency = level
                        self._turn(opened[i][0], lv, items, turn_position)
                        if lv.died is not None:
                            alive.discard(i)
                        else:
                            self.tracker.phase(lv.mp, "waiting")
                for i, lv in levels.items():
                    if not lv.turns:
                        continue   # cancelled before its first turn: nothing stored, resume runs it
                    self._finish_level(opened[i][0], lv)
                    if lv.died is not None:
                        self._died(lv)
            for i in alive:
                self.tracker.phase(self.state.models[i], "interrupted" if self.cancel.is_set() else "done")
        finally:
            for engine, _ in opened.values():
                _close(engine)

    def _died(self, lv: _Level) -> None:
        self.interrupted_reason = f"{lv.spec.name}: {_one_line(lv.died)}"
        self.tracker.phase(lv.mp, "interrupted", _one_line(lv.died))

    # one level ---------------------------------------------------------------------------
    def _begin_level(self, spec: ModelSpec, mp: ModelProgress, position: int, level: int, base: dict,
                     todo: list[Item]) -> _Level:
        return _Level(spec, mp, position, level, base, self._previous(spec, level), todo)

    def _turn(self, engine: Engine, lv: _Level, items: list[Item], turn_position: int) -> None:
        """One model's turn: its warm-up (the level's first turn only) and ``items``, with the meters."""
        s = self.settings
        if lv.turns == 0:   # the level's row, 'running', when its first turn starts
            started = dict(lv.previous["run_model"] or {}, **lv.base)
            self.recorder.save_level(dict(started, concurrency=lv.level, status="running", error=None), [])
        warm = plan(self.prompts_for(lv.spec).prompts, s.rounds, s.warmup)[0] if lv.turns == 0 else []
        turn = self._turn_seq
        self._turn_seq += 1
        lv.turns += 1
        out = LevelOutcome()
        ids: dict[int, str] = {}
        meters: dict = {}

        def on_done(item: Item, rec: RequestRecord, done_at: float) -> None:
            lv.mp.done += 1
            if rec.error is not None and not item.warmup:
                lv.mp.failed += 1
            ids[id(rec)] = uuid.uuid4().hex
            # stored now, as it is (token counts by tokenizer and outlier flags are added at the level's end)
            self.recorder.save_request(self._row(lv, item, rec, out.level_start, done_at, ids[id(rec)], turn,
                                                 turn_position))
            self.tracker.tick(lv.mp)

        def on_window(starting: bool) -> None:
            if starting:
                meters["noise"], meters["energy"] = self.noise.start(self._pids), self.energy.start()
            else:
                lv.energy.append(self.energy.stop(meters.pop("energy")))
                lv.noise.append(self.noise.stop(meters.pop("noise")))

        if lv.loop is None:
            lv.loop = LevelLoop(engine, lv.level)
        try:
            run_level(engine, warm, items, lv.level, s.request_options(), self.cancel, on_done,
                      lambda name: self.tracker.phase(lv.mp, name), out=out, on_window=on_window, loop=lv.loop)
        finally:
            if "noise" in meters:    # the window did not end normally: stop the sampler
                self.noise.stop(meters["noise"])
        lv.done += [(item, rec, done_at, out.level_start, turn, turn_position, ids.get(id(rec)))
                    for item, rec, done_at in out.done]
        if out.stats_before is not None or any(not item.warmup for item, _, _ in out.done):
            # the turn had a measured window: its CPU (unknown for one turn -> unknown for the level)
            lv.cpu_s = _add(lv.cpu_s, _delta(out.stats_before, out.stats_after))
            lv.observer_cpu_s = _add(lv.observer_cpu_s, _delta(out.observer_before, out.observer_after))
        lv.stats_after = out.stats_after or lv.stats_after
        lv.died = out.died

    def _row(self, lv: _Level, item: Item, rec: RequestRecord, turn_start: float, done_at: float,
             request_id: str, turn: int, turn_position: int) -> dict:
        row = metrics.request_row(rec, level_start=turn_start, done_at=done_at)
        row.update(request_id=request_id, run_id=self.run_id, model=lv.spec.model, backend=lv.spec.backend,
                   concurrency=lv.level, prompt_id=item.prompt["id"], round=item.round, warmup=item.warmup,
                   outlier=False, segment=self.segment, turn=turn, turn_position=turn_position)
        return row

    def _finish_level(self, engine: Engine, lv: _Level) -> None:
        if lv.loop is not None:
            try:
                lv.loop.close()
            except Exception:
                pass   # closing connections: never a reason to lose the level
            lv.loop = None
        spec, mp, level, base, previous = lv.spec, lv.mp, lv.level, lv.base, lv.previous
        # token counts with the model's tokenizer happen here, outside every timer
        if engine.count_tokens is not None:
            for _, rec, *_ in lv.done:
                if rec.usage_completion_tokens is None and rec.text_parts:
                    try:
                        rec.tokenizer_completion_tokens = engine.count_tokens(rec.output_text)
                    except Exception:
                        pass
        count_prompt = getattr(engine, "count_prompt_tokens", None)   # engines that send no usage (llama.cpp)
        for item, rec, *_ in (lv.done if count_prompt else ()):
            if rec.prompt_tokens is None:
                rec.prompt_tokens = count_prompt([{"role": "user", "content": item.prompt["text"]}])
        rows = [self._row(lv, item, rec, start, done_at, rid or uuid.uuid4().hex, turn, pos)
                for item, rec, done_at, start, turn, pos, rid in lv.done]
        new = [r for r in rows if not r["warmup"]]
        if engine.engine_wait == "inferred":
            for turn in sorted({r["turn"] for r in new}):    # offsets count from each turn's start
                metrics.infer_engine_wait([r for r in new if r["turn"] == turn])
        measured = list(previous["rows"]) + new        # a resumed level: the earlier sittings' rows too
        for r, flag in zip(measured, metrics.outlier_flags(measured)):
            r["outlier"] = flag
        planned = self.settings.rounds * len(self.prompts_for(spec).prompts)
        interrupted = lv.died is not None or len(measured) < planned
        tokens = metrics.output_tokens(measured)
        prev = previous["run_model"] or {}

        def plus(earlier, now):   # a resumed level: CPU of every sitting
            return now if not previous["rows"] else (None if earlier is None or now is None else earlier + now)

        cpu_s = plus(prev.get("cpu_s"), lv.cpu_s)
        observer_cpu_s = plus(prev.get("observer_cpu_s"), lv.observer_cpu_s)
        st1 = lv.stats_after
        if st1 is None and lv.died is None:
            st1 = engine.process_stats()
        peak = (st1 or {}).get("peak_rss_mb")
        if previous["rows"] and prev.get("peak_rss_mb") is not None:
            peak = None if peak is None else max(peak, prev["peak_rss_mb"])
        error = None
        if lv.died is not None:
            error = f"interrupted: {_one_line(lv.died)}"
        elif interrupted:
            error = f"interrupted after {len(measured)} of {planned} requests"
        for k in ("load_s", "rss_before_mb", "rss_after_load_mb"):   # the first sitting's load, when it had one
            if previous["rows"] and prev.get(k) is not None:
                base = dict(base, **{k: prev[k]})
        noise = level_noise(lv.noise, model_process_known=bool(base.get("pid")))
        new_ok = sum(1 for r in new if r["ok"])
        energy = self.energy.level(lv.energy, lv.idle_w, cpu_s=lv.cpu_s, requests=new_ok,
                                   tokens=metrics.output_tokens(new))
        run_model = dict(
            base, concurrency=level, status="interrupted" if interrupted else "ok", error=error,
            peak_rss_mb=peak, cpu_s=cpu_s, observer_cpu_s=observer_cpu_s,
            cpu_s_per_token=metrics.cpu_s_per_token(cpu_s, tokens),
            throughput_tok_s=metrics.aggregate_throughput_tok_s(measured) if measured else None,
            token_count_source=metrics.token_count_source(measured), output_tokens=tokens,
            window_s=metrics.window_s(measured) if measured else None,
            noisy=noise["noisy"], noise=noise, energy=energy, energy_j_per_request=energy["j_per_request"],
            energy_j_per_token=energy["j_per_token"], energy_estimate=energy["estimate"])
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
        self._result_keys.append((run_model["position"], run_model["model"], run_model["backend"],
                                  run_model["concurrency"]))


def _delta(a: dict | None, b: dict | None) -> float | None:
    return (b["cpu_s"] - a["cpu_s"]) if (a and b and a.get("cpu_s") is not None
                                         and b.get("cpu_s") is not None) else None


def _add(total: float | None, part: float | None) -> float | None:
    return None if total is None or part is None else total + part


def _close(engine: Engine) -> None:
    try:
        engine.close()
    except Exception:
        pass


def run_benchmark(models: list[ModelSpec], prompt_set: PromptSet, settings: Settings, **kwargs) -> RunOutcome:
    return Runner(models, prompt_set, settings, **kwargs).run()
