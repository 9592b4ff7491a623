"""`python -m core decide`: the weighted selection matrix from the command line."""
from __future__ import annotations

import argparse
import sys

from core.decision.matrix import CRITERIA, LATENCY_METRICS, METHODS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "decide",
        help="rank candidate models of benchmark runs with weights and hard constraints",
        description="Rank the candidates (model x engine) of one or more benchmark runs by a weighted sum of "
                    "normalised criteria, with hard constraints, win probabilities, flip points and ties.",
    )
    p.add_argument("--runs", metavar="ID[,ID...]", help="benchmark run ids (with --devices: default every run of "
                                                          "those devices)")
    p.add_argument("--devices", metavar="NAME[,NAME...]",
                   help="fleet decision: target devices; every constraint must hold on every one of them")
    p.add_argument("--aggregate", default="worst", metavar="worst|mean|CRITERION=worst|mean,...",
                   help="with --devices: how each criterion is taken across devices (default: the worst device)")
    p.add_argument("--weights", default="balanced", metavar="NAME=W,...",
                   help=f"weights of {', '.join(CRITERIA)} (a subset is fine, the rest are 0; normalised to sum 1) "
                        "or a preset: balanced, 'latency first', 'quality first', 'smallest footprint'")
    p.add_argument("--latency-metric", choices=LATENCY_METRICS, default="e2e_p95")
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="hard constraint, repeatable: peak_rss_mb<=2000, e2e_p95_ms<=3000, ttft_p95_ms<=500, "
                        "quality>=0.6, disk_mb<=1000, 'license in apache-2.0,mit'")
    p.add_argument("--require-commercial", action="store_true", help="the license must allow commercial use")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare runs whose prompt set, max tokens, temperature, rounds or device differ "
                        "(refused otherwise); the differences travel as warnings in the output and the record")
    p.add_argument("--normalization", choices=METHODS, default="minmax", help="min-max (default) or rank")
    p.add_argument("--json", metavar="OUT", help="write the matrix as JSON")
    p.add_argument("--report", metavar="OUT.md|OUT.html", help="write a report (.md, .html, .csv or .json)")
    p.add_argument("--save", metavar="NAME", help="save the decision under this name")
    p.add_argument("--notes", default="", help="the team's notes, saved with --save and shown in the report")
    p.add_argument("--judge-min-kappa", type=float, default=None, metavar="K",
                   help="trust gate: a judge's scores count on their own only with weighted kappa >= K with people "
                        "(default 0.6); below it quality resting on the judge is marked unverified")
    p.add_argument("--judge-min-outputs", type=int, default=None, metavar="N",
                   help="trust gate: ... on at least N outputs scored by both the judge and people (default 20)")
    p.add_argument("--db", metavar="PATH", help="store: DuckDB file or DuckLake URL (default: data/slm_selector.duckdb or $SLM_DB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.decision import data, engine, export, record
    from core.errors import UserError
    from core.output import write_json

    weights = engine.weight_vector(args.weights)  # bad weights fail before any database work
    if args.devices:
        return _run_fleet(args, weights)
    if not args.runs:
        raise UserError("no run id given: use --runs ID[,ID...] (or --devices NAME[,NAME...])")
    run_ids = data.parse_run_ids(args.runs)
    from core.quality.calibration import GATE_KAPPA, GATE_MIN_OUTPUTS, Gate
    k = GATE_KAPPA if args.judge_min_kappa is None else args.judge_min_kappa
    n = GATE_MIN_OUTPUTS if args.judge_min_outputs is None else args.judge_min_outputs
    if not -1.0 <= k <= 1.0:
        raise UserError("--judge-min-kappa must be between -1 and 1")
    if n < 1:
        raise UserError("--judge-min-outputs must be at least 1")
    warnings: list[str] = []
    candidates = data.load_candidates(run_ids, gate=Gate(k, n), allow_mixed=args.allow_mixed, warnings=warnings)
    if not candidates:
        raise UserError(f"no candidates in run(s) {', '.join(run_ids)}")
    result = engine.decide(candidates, weights, latency_metric=args.latency_metric, constraints=args.constraint,
                           require_commercial=args.require_commercial, method=args.normalization,
                           warnings=warnings)
    if args.json:
        write_json(args.json, result)
    if args.report or args.save:
        rec = record.build_record(args.save or "decision", result, run_ids, notes=args.notes)
        if args.save:
            record.save(rec)
        if args.report:
            export.write_report(rec, args.report)
    _print_table(result)
    return 0


def _run_fleet(args: argparse.Namespace, weights) -> int:
    from core.decision import fleet, record, export
    from core.output import write_json

    devices = fleet.parse_devices(args.devices)
    agg = fleet.parse_aggregation(args.aggregate)
    result = fleet.decide_fleet(devices, weights, run_ids=args.runs, aggregation=agg,
                                latency_metric=args.latency_metric, constraints=args.constraint,
                                require_commercial=args.require_commercial, method=args.normalization)
    if args.json:
        write_json(args.json, result)
    if args.report or args.save:
        run_ids = fleet.result_run_ids(result)
        rec = record.build_record(args.save or "decision", result, run_ids, notes=args.notes)
        if args.save:
            record.save(rec)
        if args.report:
            export.write_report(rec, args.report)
    sys.stdout.write(f"devices: {', '.join(devices)}; aggregation: "
                     f"{', '.join(f'{k}={v}' for k, v in agg.items())}\n")
    _print_table(result)
    return 0


def _print_table(result: dict) -> None:
    from core.decision.export import verdict
    from core.output import term_text

    out = sys.stdout
    for line in result.get("warnings", []):
        out.write(f"warning: {term_text(line)}\n")
    w = max([len(r["label"]) for r in result["candidates"]] + [9])
    out.write(f"{'rank':>4}  {'candidate':<{w}}  {'score':>6}  {'win%':>5}  status\n")
    for r in result["candidates"]:
        rank = str(r["rank"]) if r["rank"] is not None else "-"
        if r["passes"]:
            status = "ok" + (f", tie with {', '.join(r['tie_with'])}" if r["tie_with"] else "")
        else:
            status = "FAILS: " + "; ".join(r["failed_constraints"])
        out.write(f"{rank:>4}  {term_text(r['label']):<{w}}  {r['score']:6.3f}  {100 * r['win_probability']:5.1f}  "
                  f"{term_text(status)}\n")
    out.write(f"winner: {result['winner'] or 'none (no candidate passes the constraints)'}\n")
    out.write(term_text(verdict(result)) + "\n")
