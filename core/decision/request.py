"""What a decision is asked over: `DecisionRequest`, built the same way by `decide` and by the Decision page.

A request names runs or target devices, the judge trust gate, the constraints, the latency metric, the
normalisation and, for devices, how each criterion is aggregated. `prepare()` does the weight-independent
work once (reading the store, through the one candidate builder `data.build_candidates` on both paths);
`evaluate(prepared, weights)` is the per-weights step the page repeats on every slider move.

The gate and the "prefer" choice default to what the user last set on the Quality page (the store's
settings), so the page, `decide --runs` and `decide --devices` mark the same quality unverified.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from core.decision import data, engine, fleet, robustness
from core.errors import UserError


@dataclass(frozen=True)
class DecisionRequest:
    runs: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()              # non-empty: a fleet decision over these devices
    gate_min_kappa: float | None = None        # None: the stored gate (Quality page), else its default
    gate_min_outputs: int | None = None
    prefer: str | None = None                  # "human" / "judge"; None: the stored choice
    constraints: tuple[str, ...] = ()
    latency_metric: str = "e2e_p95"
    method: str = "minmax"
    require_commercial: bool = False
    allow_mixed: bool = False
    aggregation: tuple[tuple[str, str], ...] | str | None = None
    n_boot: int = robustness.DEFAULT_BOOT
    seed: int = 0
    campaign: str | None = None                # a fleet decision over a campaign's runs (see make)
    campaign_missing: tuple[str, ...] = ()     # its target devices without a done run

    @classmethod
    def make(cls, *, runs=None, devices=None, aggregation=None, constraints=(), campaign=None,
             **kw) -> "DecisionRequest":
        """From user input: run ids or devices as "A,B" or a list; aggregation as text or a dict.

        ``campaign``: its devices' campaign runs, compared by construction (one plan); its target devices
        that have not finished yet are target devices all the same, so every constraint they would decide
        fails, and the decision says which are missing."""
        missing: tuple[str, ...] = ()
        if campaign:
            if runs or devices:
                raise UserError("--campaign decides over the campaign's own runs and devices: drop --runs/--devices")
            from core.store.campaigns import campaign_decision_inputs
            by_device, missing_list = campaign_decision_inputs(campaign)
            missing = tuple(missing_list)
            runs = [r for ids in by_device.values() for r in ids]
            devices = list(dict.fromkeys([*by_device, *missing]))
            if not runs:
                raise UserError(f"no device has finished campaign {campaign!r} yet"
                                + (f" (missing: {', '.join(missing)})" if missing else ""))
        devs = tuple(fleet.parse_devices(devices)) if devices else ()
        ids = tuple(data.parse_run_ids(runs)) if runs else ()
        if not devs and not ids:
            raise UserError("no run id given: use --runs ID[,ID...] (or --devices NAME[,NAME...])")
        if campaign:
            kw.update(campaign=campaign, campaign_missing=missing)
        agg = tuple(fleet.parse_aggregation(aggregation).items()) if devs else None
        return cls(runs=ids, devices=devs, aggregation=agg, constraints=tuple(constraints or ()), **kw)

    @property
    def is_fleet(self) -> bool:
        return bool(self.devices)

    def gate(self):
        from core.quality.calibration import check_gate, stored_gate

        stored = stored_gate()
        return check_gate(stored.min_kappa if self.gate_min_kappa is None else self.gate_min_kappa,
                          stored.min_outputs if self.gate_min_outputs is None else self.gate_min_outputs)

    def preference(self) -> str:
        if self.prefer is not None:
            return self.prefer
        from core.quality.scores import get_prefer

        return get_prefer()

    def resolved(self) -> "DecisionRequest":
        """This request with the stored gate and preference read now and pinned: a change on the Quality page
        makes a different request (so the page's cache cannot serve the old gate)."""
        gate = self.gate()
        return replace(self, gate_min_kappa=gate.min_kappa, gate_min_outputs=gate.min_outputs,
                       prefer=self.preference())

    def prepare(self):
        """engine.Prepared (runs) or fleet.FleetPrepared (devices)."""
        gate, prefer = self.gate(), self.preference()
        if self.is_fleet:
            prepared = fleet.prepare_fleet(list(self.devices), run_ids=list(self.runs) or None,
                                           aggregation=dict(self.aggregation or ()),
                                           latency_metric=self.latency_metric, constraints=list(self.constraints),
                                           require_commercial=self.require_commercial, method=self.method,
                                           n_boot=self.n_boot, seed=self.seed, prefer=prefer, gate=gate)
            if self.campaign_missing:
                prepared.prep.warnings.append(
                    f"campaign {self.campaign}: target device(s) {', '.join(self.campaign_missing)} have not "
                    "finished it yet: every constraint they would decide fails until they do")
            return prepared
        warnings: list[str] = []
        findings: list[str] = []
        cands = data.load_candidates(list(self.runs), prefer=prefer, gate=gate, allow_mixed=self.allow_mixed,
                                     warnings=warnings, findings=findings)
        if not cands:
            raise UserError(f"no candidates in run(s) {', '.join(self.runs)}")
        return engine.prepare(cands, latency_metric=self.latency_metric, constraints=list(self.constraints),
                              require_commercial=self.require_commercial, method=self.method, n_boot=self.n_boot,
                              seed=self.seed, warnings=warnings, findings=findings)

    def evaluate(self, prepared, weights, **kw) -> engine.Decision:
        if isinstance(prepared, fleet.FleetPrepared):
            return fleet.evaluate_fleet(prepared, weights, seed=self.seed, **kw)
        return engine.evaluate(prepared, weights, seed=self.seed, **kw)

    def decide(self, weights, **kw) -> engine.Decision:
        return self.evaluate(self.prepare(), weights, **kw)

    def run_ids(self, decision: engine.Decision) -> list[str]:
        """The runs a decision read: what its record names."""
        if self.is_fleet:
            return fleet.result_run_ids(decision)
        return list(self.runs)
