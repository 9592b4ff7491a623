"""The fleet decision: one choice that must hold on every target device.

Each candidate is a model on an engine; on each target device it has the measurements of that device's
latest run with it. A hard constraint must hold on EVERY target device (a device without a measurement
fails it). Each criterion is aggregated across devices as the user chooses: the worst device (default) or
the mean. The matrix, win probabilities and flip points are the ordinary engine's (core.decision.engine),
computed on the aggregated values; the result adds a per-device breakdown, which device decided each
criterion and each constraint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from core.decision import data, engine, robustness
from core.decision.criteria import AGGREGATED, AGGREGATIONS, CRITERIA, MEASURES, aggregated_by
from core.decision.licenses import license_info
from core.decision.matrix import Candidate, normalize, parse_constraints
from core.errors import UserError

AGG_NAMES = tuple(c.name for c in AGGREGATED)

def parse_devices(spec) -> list[str]:
    items = spec.split(",") if isinstance(spec, str) else [x for p in (spec or []) for x in str(p).split(",")]
    out = list(dict.fromkeys(x.strip() for x in items if x and x.strip()))
    if not out:
        raise UserError("no target device given: use --devices NAME[,NAME...]")
    return out


def parse_aggregation(spec) -> dict[str, str]:
    """'worst' / 'mean' for every criterion, or 'latency=mean,quality=worst' (the rest: worst)."""
    out = {c: "worst" for c in AGG_NAMES}
    if not spec:
        return out
    if isinstance(spec, dict):
        items = list(spec.items())
    elif str(spec).strip() in AGGREGATIONS:
        return {c: str(spec).strip() for c in AGG_NAMES}
    else:
        items = []
        for part in str(spec).split(","):
            if "=" not in part:
                raise UserError(f"bad aggregation '{part.strip()}': expected CRITERION=worst|mean or worst|mean")
            k, v = part.split("=", 1)
            items.append((k.strip(), v.strip()))
    for k, v in items:
        if k not in AGG_NAMES:
            raise UserError(f"unknown criterion '{k}' in aggregation: expected one of {', '.join(AGG_NAMES)}")
        if v not in AGGREGATIONS:
            raise UserError(f"unknown aggregation '{v}' for {k}: expected worst or mean")
        out[k] = v
    return out


@dataclass
class FleetCandidate(Candidate):
    """A model x engine across the target devices; ``metrics()`` are the aggregated values."""

    per_device: dict = field(default_factory=dict)      # device -> Candidate (None: not measured there)
    aggregation: dict = field(default_factory=dict)
    latency_metric: str = "e2e_p95"
    _device_metrics: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.model} | {self.backend}"

    def device_metrics(self) -> dict[str, dict | None]:
        if not self._device_metrics:
            self._device_metrics = {d: (c.metrics(self.latency_metric) if c is not None else None)
                                    for d, c in self.per_device.items()}
        return self._device_metrics

    def _how(self, key: str) -> str:
        return self.aggregation.get(aggregated_by(key), "worst")

    def decided_by(self) -> dict[str, str | None]:
        """{metric key: the device whose value was taken (worst), None for a mean or when unknown}."""
        out = {}
        dm = self.device_metrics()
        for key, m in MEASURES.items():
            if self._how(key) != "worst":
                out[key] = None
                continue
            vals = [(dev[key], d) for d, dev in dm.items() if dev is not None and dev.get(key) is not None]
            out[key] = (min(vals) if m.higher_is_better else max(vals))[1] if vals else None
        return out

    def metrics(self, latency_metric: str | None = None) -> dict:
        dm = self.device_metrics()
        out = {}
        for key, m in MEASURES.items():
            vals = [dev[key] for dev in dm.values() if dev is not None and dev.get(key) is not None]
            if not vals:
                out[key] = None
            elif self._how(key) == "mean":
                out[key] = float(np.mean(vals))
            else:
                out[key] = float(min(vals) if m.higher_is_better else max(vals))
        return out


def _decider(c: FleetCandidate, crit: str) -> Candidate | None:
    d = c.decided_by().get(next(x.metric for x in CRITERIA if x.name == crit))
    return c.per_device.get(d) if d else None


def _build(per: dict[tuple[str, str], dict[str, Candidate]], devices: list[str], agg: dict,
           latency_metric: str) -> list[FleetCandidate]:
    out = []
    for (model, backend), by_dev in sorted(per.items()):
        present = [c for c in by_dev.values()]
        first = present[0]
        fc = FleetCandidate(
            run_id=",".join(sorted({c.run_id for c in present})), model=model, backend=backend,
            concurrency=first.concurrency,
            status="failed" if all(c.status == "failed" for c in present) else first.status,
            error=first.error, license=first.license, environment=None,
            requests_failed=sum(c.requests_failed for c in present),
            notes=sorted({n for c in present for n in c.notes}),
            per_device={d: by_dev.get(d) for d in devices}, aggregation=agg, latency_metric=latency_metric,
            label=next((c.label for c in present if c.label), None))
        # resampling arrays (win probabilities, ties): those of the device that decided latency,
        # or every device's requests together for a mean
        lat = _decider(fc, "latency") if agg["latency"] == "worst" else None
        arrays = [lat] if lat is not None else present
        fc.e2e_ms = np.concatenate([c.e2e_ms for c in arrays])
        fc.ttft_ms = np.concatenate([c.ttft_ms for c in arrays])
        fc.tpot_ms = np.concatenate([c.tpot_ms for c in arrays])
        q = _decider(fc, "quality") if agg["quality"] == "worst" else None
        fc.quality = (q.quality if q is not None else None) if agg["quality"] == "worst" else _mean_quality(present)
        out.append(fc)
    return out


def _mean_quality(cands: list[Candidate]) -> dict | None:
    qs = [c.quality for c in cands if c.quality and c.quality.get("mean") is not None]
    if not qs:
        return None
    return {"mean": float(np.mean([q["mean"] for q in qs])), "ci_low": None, "ci_high": None,
            "n": sum(int(q.get("n") or 0) for q in qs), "source": "mean over devices"}


def load_device_candidates(devices: list[str], run_ids=None, *, prefer: str = "human", gate=None
                           ) -> dict[tuple[str, str], dict[str, Candidate]]:
    """{(model, backend): {device: Candidate}} from the runs (default: every run of the devices); for a device
    with several runs of a model, the latest one counts. The candidates are the decision's own
    (data.build_candidates): the gate and the quality notes are the same as for a decision over runs."""
    from core.store import bench as bench_store
    from core.store import devices as dstore

    ids = data.parse_run_ids(run_ids) if run_ids else dstore.runs_on_devices(devices)
    if not ids:
        raise UserError(f"no benchmark run recorded on device(s) {', '.join(devices)}")
    inputs = bench_store.candidate_inputs(ids)
    known = {r["run_id"] for r in inputs["runs"]}
    missing = [r for r in ids if r not in known]
    if missing:
        raise UserError(f"unknown run id {', '.join(missing)}")
    device_of = {r["run_id"]: r["device"] for r in inputs["runs"]}
    mine = [c for c in data.build_candidates(inputs, prefer=prefer, gate=gate) if device_of[c.run_id] in devices]
    per: dict[tuple[str, str], dict[str, Candidate]] = {}
    for c in mine:                                   # oldest run first: later runs replace earlier ones
        dev = device_of[c.run_id]
        c.device = dev
        c.notes = [f"benchmark ({dev}): {n[len('benchmark: '):]}" if n.startswith("benchmark: ") else n
                   for n in c.notes]
        per.setdefault((c.model, c.backend), {})[dev] = c
    if not per:
        raise UserError(f"no candidates on device(s) {', '.join(devices)}")
    return per


@dataclass
class FleetPrepared:
    prep: engine.Prepared
    devices: list[str]
    aggregation: dict
    constraint_devices: list[dict]     # per candidate: {constraint text: {"device", "value", "holds"}}
    device_rows: list[dict]            # per candidate: {device: {...}}


def _constraint_report(c: FleetCandidate, cons, lic) -> tuple[list[str], dict]:
    """Reasons the candidate fails (constraint per device, missing device) and, per constraint, the deciding device."""
    reasons, decided = [], {}
    dm = c.device_metrics()
    for d, m in dm.items():
        if m is None:
            reasons.append(f"not benchmarked on device {d}")
    for con in cons:
        if con.field == "license":
            why = con.check({}, lic)
            decided[con.text] = {"device": None, "value": lic["id"], "holds": why is None}
            if why:
                reasons.append(why)
            continue
        worst = None
        for d, m in dm.items():
            if m is None:
                continue
            v = m.get(con.field)
            why = con.check(m, lic)
            hi = con.op in (">=", ">")
            score = (-math.inf if v is None else (v if hi else -v))
            if worst is None or (why and not worst[2]) or (bool(why) == bool(worst[2]) and score < worst[3]):
                worst = (d, v, why, score)
            if why:
                reasons.append(f"{why} on device {d}")
        if worst is not None:
            decided[con.text] = {"device": worst[0], "value": worst[1], "holds": worst[2] is None}
    return list(dict.fromkeys(reasons)), decided


def prepare_fleet(devices, *, run_ids=None, aggregation=None, latency_metric: str = "e2e_p95", constraints=(),
                  require_commercial: bool = False, method: str = "minmax", n_boot: int | None = None,
                  seed: int = 0, prefer: str = "human", gate=None, per=None) -> FleetPrepared:
    devices = parse_devices(devices)
    agg = parse_aggregation(aggregation)
    cons = parse_constraints(constraints)
    per = per if per is not None else load_device_candidates(devices, run_ids, prefer=prefer, gate=gate)
    cands = _build(per, devices, agg, latency_metric)
    n_boot = robustness.DEFAULT_BOOT if n_boot is None else n_boot
    # the engine's work without resampling; resamples are normalised below against the fleet's passing set
    prep = engine.prepare(cands, latency_metric=latency_metric, constraints=[], require_commercial=require_commercial,
                          method=method, seed=seed, n_boot=0)
    failed, decided_all, device_rows = [], [], []
    for i, c in enumerate(cands):
        lic = license_info(c.license)
        reasons, decided = _constraint_report(c, cons, lic)
        failed.append(list(prep.failed[i]) + reasons)
        decided_all.append(decided)
        rows = {}
        for d, m in c.device_metrics().items():
            dc = c.per_device.get(d)
            if m is None:
                rows[d] = None
                continue
            rows[d] = {"run_id": dc.run_id, "status": dc.status, "requests_ok": dc.requests_ok,
                       "requests_failed": dc.requests_failed, "metrics": m,
                       "failed_constraints": [f"{why}" for con in cons if con.field != "license"
                                              for why in [con.check(m, lic)] if why]}
        device_rows.append(rows)
    passes = np.asarray([not f for f in failed], dtype=bool)
    norm = normalize(prep.raw, passes, method)
    boot_norm = None
    if n_boot > 1 and cands:
        boot_norm = normalize(engine._bootstrap(cands, prep.raw, latency_metric, n_boot, seed), passes, method)
    prep = replace(prep, constraints=cons, passes=passes, failed=failed, norm=norm, boot_norm=boot_norm)
    return FleetPrepared(prep, devices, agg, decided_all, device_rows)


def evaluate_fleet(fp: FleetPrepared, weights, **kw) -> engine.Decision:
    """``engine.evaluate``'s Decision plus, per candidate, ``devices`` (each device's values and failures),
    ``decided_by`` (which device gave each aggregated value) and ``constraint_devices``."""
    result = engine.evaluate(fp.prep, weights, **kw)
    index = {c.id: i for i, c in enumerate(fp.prep.candidates)}
    rows = []
    for row in result.candidates:
        i = index[row.candidate]
        c = fp.prep.candidates[i]
        by = c.decided_by()
        rows.append(replace(
            row, devices=fp.device_rows[i], decided_by={x.key: by.get(x.metric) for x in AGGREGATED},
            constraint_devices=fp.constraint_devices[i],
            environment={d: (dc.environment if dc is not None else None) for d, dc in c.per_device.items()}))
    return replace(result, candidates=rows, devices=list(fp.devices), aggregation=dict(fp.aggregation))


def result_run_ids(result: engine.Decision) -> list[str]:
    """The runs a fleet decision read (every device's run of every candidate): what its record names."""
    return sorted({d["run_id"] for r in result.candidates for d in (r.devices or {}).values() if d})
