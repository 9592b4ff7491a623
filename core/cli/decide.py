"""`python -m core decide`: the weighted selection matrix from the command line."""
from __future__ import annotations

import argparse
import sys

from core.decision.criteria import AGGREGATED, CONSTRAINT_FIELDS, help_text
from core.decision.matrix import LATENCY_METRICS, METHODS, PRESETS


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
    p.add_argument("--campaign", metavar="NAME",
                   help="decide over a campaign: each device's campaign run (one plan, comparable by construction); "
                        "target devices that have not finished it are named and fail the constraints they would decide")
    p.add_argument("--aggregate", default="worst", metavar="worst|mean|CRITERION=worst|mean,...",
                   help="with --devices: how each criterion is taken across devices (default: the worst device); "
                        f"criteria: {', '.join(c.name for c in AGGREGATED)}")
    p.add_argument("--weights", default="balanced", metavar="NAME=W,...",
                   help=f"weights of the criteria: {help_text()} (a subset is fine, the rest are 0; normalised to "
                        "sum 1) or a preset: " + ", ".join(repr(n) if " " in n else n for n in PRESETS))
    p.add_argument("--latency-metric", choices=LATENCY_METRICS, default="e2e_p95")
    p.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="hard constraint, repeatable: FIELD<=X (or >=, <, >) with FIELD one of "
                        f"{', '.join(sorted(CONSTRAINT_FIELDS))}, or 'license in apache-2.0,mit'; e.g. "
                        "peak_rss_mb<=2000, quality>=0.6")
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
                        "(default: the gate set on the Quality page, else 0.6); below it quality resting on the "
                        "judge is marked unverified, with --runs and with --devices")
    p.add_argument("--judge-min-outputs", type=int, default=None, metavar="N",
                   help="trust gate: ... on at least N outputs scored by both the judge and people (default: the "
                        "Quality page's, else 20)")
    p.add_argument("--db", metavar="PATH", help="store: DuckDB file or DuckLake URL (default: data/slm_selector.duckdb or $SLM_DB)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.decision import engine, export, record
    from core.decision.request import DecisionRequest
    from core.output import write_json

    weights = engine.weight_vector(args.weights)  # bad weights fail before any database work
    req = DecisionRequest.make(
        runs=args.runs, devices=args.devices, campaign=args.campaign,
        aggregation=args.aggregate if args.devices or args.campaign else None,
        constraints=args.constraint, gate_min_kappa=args.judge_min_kappa, gate_min_outputs=args.judge_min_outputs,
        latency_metric=args.latency_metric, method=args.normalization, require_commercial=args.require_commercial,
        allow_mixed=args.allow_mixed)
    req.gate()                                   # a bad gate fails before any reading, too
    result = req.decide(weights)
    if args.json:
        write_json(args.json, result.to_dict())
    if args.report or args.save:
        rec = record.build_record(args.save or "decision", result, req.run_ids(result), notes=args.notes)
        if args.save:
            record.save(rec)
        if args.report:
            export.write_report(rec, args.report)
    if req.is_fleet:
        sys.stdout.write(f"devices: {', '.join(req.devices)}; aggregation: "
                         f"{', '.join(f'{k}={v}' for k, v in req.aggregation)}\n")
    _print_table(result)
    return 0


def _print_table(result) -> None:
    from core.decision import report
    from core.output import term_text

    v = report.build(result)
    out = sys.stdout
    for line in v.warnings:
        out.write(f"warning: {term_text(line)}\n")
    w = max([len(term_text(r.name)) for r in v.rows] + [10])
    out.write(f"{'rank':>10}  {'candidate':<{w}}  {'score':>6}  {'win':>5}  status\n")
    for r in v.rows:
        status = ("ok" + (f", too close to call with {r.ties}" if r.ties else "")) if r.passes else f"FAILS: {r.failed}"
        out.write(f"{r.rank:>10}  {term_text(r.name):<{w}}  {r.score:>6}  {r.win:>5}  {term_text(status)}\n")
    out.write(f"winner: {term_text(v.winner) if v.winner else 'none (no candidate passes the constraints)'}\n")
    out.write(term_text(v.verdict) + "\n")
