"""CLI: `check`, `judge`, `scores`, `rubric import|export|list`."""
from __future__ import annotations

import sys

from core.errors import UserError
from core.output import term_text, write_json


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _resolve_foundry_id(name: str) -> str:
    """A Foundry Local model by id or alias -> its id (UserError when unknown)."""
    from core.catalog.models import resolve_model

    return resolve_model(name, backend="foundry")["id"]


def cmd_judge(args) -> int:
    from core.quality.judge import JudgeModel, run_judge

    if args.retries < 0 or args.retries > 5:
        raise UserError("--retries must be between 0 and 5")
    if args.endpoint:
        judge = JudgeModel(args.judge, "openai", args.endpoint.rstrip("/"), args.api_key_env,
                           max_tokens=args.max_tokens, timeout=args.timeout)
    elif args.backend == "llamacpp":
        judge = JudgeModel(args.judge, "llamacpp", max_tokens=args.max_tokens, timeout=args.timeout)
    else:
        judge = JudgeModel(_resolve_foundry_id(args.judge), "foundry", max_tokens=args.max_tokens, timeout=args.timeout)

    def progress(done: int, total: int, what: str) -> None:
        if not args.quiet and done < total:
            print(f"[{done + 1}/{total}] {what}", file=sys.stderr, flush=True)

    for w in _precheck_warnings(args.run, judge.model):
        print(f"warning: {w}", file=sys.stderr)
    doc = run_judge(args.run, args.rubric, judge, pairwise=args.pairwise, retries=args.retries, progress=progress)
    if args.json:
        write_json(args.json, doc)
    if args.pairwise:
        for p in doc.get("pairwise", []):
            print(f"{p['prompt_id']}\t{p['model_a']} vs {p['model_b']}\t{p['verdict_ab']}/{p['verdict_ba']} -> {p['verdict']}")
    else:
        seen = set()
        for s in doc["scores"]:
            if s["request_id"] in seen:
                continue
            seen.add(s["request_id"])
            row = [x for x in doc["scores"] if x["request_id"] == s["request_id"]]
            detail = " ".join(f"{x['criterion']}={_fmt(x['score'])}" for x in row) if s["status"] == "ok" else "FAILED"
            print(f"{s['prompt_id']}\t{s['model']}\t{detail}")
    total = len(doc.get("pairwise", [])) * 2 if args.pairwise else len({s["request_id"] for s in doc["scores"]})
    print(f"judge run {doc['judge_run_id']}: {total - doc['failed']} of {total} judgements parsed, {doc['failed']} failed"
          + (f"; wrote {args.json}" if args.json else ""))
    return 0


def _precheck_warnings(run_id: str, judge_model: str) -> list[str]:
    # same-family warnings are computed again (and stored) by run_judge; printed here before the long part
    from core.catalog.families import same_family_warnings
    from core.quality.outputs import run_outputs

    return same_family_warnings(judge_model, sorted({o["model_id"] for o in run_outputs(run_id)}))


def cmd_check(args) -> int:
    from core.quality.scorers import check_run

    def progress(done: int, total: int, what: str) -> None:
        if not args.quiet and (done == total or done % 10 == 0):
            print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)

    out = doc = check_run(args.run, args.rubric, progress=progress)
    rubric = doc["rubric"]
    per_model: dict[str, list[dict]] = {}
    for r in doc["scores"]:
        per_model.setdefault(r["model"], []).append(r["scores"])
    if args.json:
        write_json(args.json, out)
    from core.quality.rubrics import get_rubric
    rub = get_rubric(rubric)
    names = rub.criterion_names
    print(f"run {args.run}  rubric {rubric}  scorer {doc['scorer']}  (criteria on their scales; checks passed)")
    print(f"{'model':40s} " + " ".join(f"{n[:12]:>12s}" for n in names) + f" {'checks':>7s}")
    for model in sorted(per_model):
        rows = per_model[model]
        means = [[r[n] for r in rows if n in r] for n in names]
        cells = " ".join(f"{_fmt(sum(v) / len(v), 2) if v else '-':>12s}" for v in means)
        rate = out["check_pass_rate"].get(model)
        print(f"{term_text(model)[:40]:40s} {cells} {_fmt(rate, 2) if rate is not None else '-':>7s}")
    print(f"scorer run {doc['judge_run_id']}: {len(doc['scores'])} outputs scored in {doc['seconds']:.1f} s; "
          f"{len(doc['checks'])} check results" + (f"; wrote {args.json}" if args.json else ""))
    return 0


def cmd_scores(args) -> int:
    from core.quality.paired import paired_verdicts
    from core.quality.scores import quality_report

    doc = quality_report(args.run, prefer=args.prefer, rubric=args.rubric)
    out = {"run_id": doc["run_id"], "models": doc["models"], "agreement": doc["agreement"],
           "rubric": doc["rubric"], "prefer": doc["prefer"], "judge_run_id": doc["judge_run_id"],
           "rater": doc.get("rater"), "raters": doc.get("raters", []), "people": doc.get("people"),
           "paired": paired_verdicts(doc)}
    if args.json:
        write_json(args.json, out)
    if doc["rubric"] is None:
        print(f"run {args.run} has no scores yet (run `python -m core judge` or score it by hand)")
        return 0
    print(f"run {doc['run_id']}  rubric {doc['rubric']}  (quality on 0..1; prefer {doc['prefer']} scores)")
    print(f"{'model':40s} {'quality':>8s} {'95% CI':>15s} {'n':>4s}  {'status':10s} source")
    for m in sorted(doc["models"], key=lambda m: -(m["quality"]["mean"] if m["quality"]["mean"] is not None else -1)):
        q = m["quality"]
        ci = f"{_fmt(q['ci_low'], 2)}-{_fmt(q['ci_high'], 2)}" if q["n"] else "-"
        print(f"{term_text(m['model'])[:40]:40s} {_fmt(q['mean']):>8s} {ci:>15s} {q['n']:>4d}  {m['status']:10s} "
              f"{term_text(m['source'] or '-')}")
    for p in out["paired"]:
        print(term_text(p["sentence"]))
    for r in out["raters"]:
        print(term_text(f"rater {r['name']}: {'verified' if r['trusted'] else 'unverified'} ({r['reason']})"))
    if doc["agreement"]:
        print("agreement judge vs people:")
        for name, a in doc["agreement"].items():
            print(f"  {name:20s} spearman {_fmt(a['spearman'])}  kappa_w {_fmt(a['kappa_weighted'])}  n {a['n']}")
    if args.json:
        print(f"wrote {args.json}")
    return 0


def cmd_rubric(args) -> int:
    from core.quality import rubrics

    if args.action == "import":
        if not args.target:
            raise UserError("rubric import needs FILE")
        r = rubrics.import_rubric(args.target)
        what = (f"version {r.version}" + (" (new; earlier versions and their scores are kept)" if r.version > 1 else "")
                if getattr(r, "new_version", True) else f"unchanged, still version {r.version}")
        print(f"imported rubric {r.name}: {len(r.criteria)} criteria, {len(r.prompts)} prompts, "
              f"{len(r.checks) + sum(len(p.checks) for p in r.prompts.values())} checks; {what}")
    elif args.action == "export":
        if not args.target:
            raise UserError("rubric export needs NAME")
        if not args.out:
            raise UserError("rubric export needs --out FILE")
        path = rubrics.export_rubric(args.target, args.out)
        print(f"wrote rubric {args.target} to {path}")
    else:
        rubrics.ensure_default_rubrics()
        for name in rubrics.list_rubrics():
            print(name)
    return 0


def register(sub) -> None:
    c = sub.add_parser(
        "check", help="score a run's outputs with the automatic scorers and checks (no model call)",
        description="Run the rubric's automatic checks and the automatic scorers on every scored output of a run "
                    "(the first successful measured request per model and prompt): coverage (expected aspects "
                    "matched to the output's sentences by sentence embeddings, and must_include), faithfulness "
                    "(names, dates and numbers the transcript lacks; must_not_include), concision (max_words), "
                    "format (the sections asked for). Stored as a versioned rater, calibrated against people like a "
                    "judge. --json writes {judge_run_id, run_id, rubric, scorer, scores: [{request_id, model, "
                    "prompt_id, scores, details}], checks, check_pass_rate, seconds}.")
    c.add_argument("--run", required=True, metavar="RUN_ID")
    c.add_argument("--rubric", metavar="NAME", help="default: the rubric used on the run, else its prompt set's")
    c.add_argument("--json", metavar="OUT")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.add_argument("--db", metavar="PATH")
    c.set_defaults(func=cmd_check)

    j = sub.add_parser(
        "judge", help="score a benchmark run's outputs with an LLM judge",
        description="Judge every scored output of a run (the first successful measured request per model and "
                    "prompt) against a rubric, with a versioned prompt template, temperature 0 and a strict JSON "
                    "parse with bounded retries. An unparseable answer is a failed judgement kept with its raw "
                    "text. --json writes {run_id, judge: {model, backend, template_version}, scores: [{request_id, "
                    "model, prompt_id, criterion, score, status, rationale, raw}], failed}.")
    j.add_argument("--run", required=True, metavar="RUN_ID")
    j.add_argument("--rubric", required=True, metavar="NAME")
    j.add_argument("--judge", required=True, metavar="MODEL",
                   help="judge model: served at --endpoint when given, else a Foundry Local model (id or alias)")
    j.add_argument("--endpoint", metavar="URL", help="OpenAI-compatible base URL serving MODEL")
    j.add_argument("--api-key-env", metavar="VAR", help="name of the env var holding the endpoint's API key")
    j.add_argument("--backend", choices=["foundry", "llamacpp"], default="foundry",
                   help="engine for MODEL without --endpoint (default foundry; llamacpp runs the starter GGUF)")
    j.add_argument("--pairwise", action="store_true",
                   help="compare outputs pairwise per prompt, each pair in both orders (inconsistent when they disagree)")
    j.add_argument("--retries", type=int, default=2, help="extra attempts after an unparseable answer (default 2)")
    j.add_argument("--max-tokens", type=int, default=512)
    j.add_argument("--timeout", type=float, default=180.0, metavar="SECONDS")
    j.add_argument("--json", metavar="OUT")
    j.add_argument("--quiet", action="store_true", help="no progress lines")
    j.add_argument("--db", metavar="PATH")
    j.set_defaults(func=cmd_judge)

    s = sub.add_parser(
        "scores", help="quality per model of a run, and judge-human agreement",
        description="Quality per model on the rubric's normalised 0..1 scale: the weighted mean over criteria per "
                    "output, averaged over outputs, with a bootstrap 95% interval; human scores preferred over the "
                    "judge's where both exist (setting quality.prefer, or --prefer). Agreement: Spearman and "
                    "quadratic-weighted Cohen's kappa per criterion and overall, with n. --json writes {run_id, "
                    "models: [{model, source, status, quality: {mean, ci_low, ci_high, n, source, verified}, criteria: "
                    "{NAME: ...}, per_prompt}], agreement, rater, raters: [{name, kind, trusted, reason, kappa, ...}], "
                    "people, paired: [{model_a, model_b, verdict, mean, ci_low, ci_high, n, sentence}]}. source: "
                    "people, else the best rater (a verified one first); status: people, verified or unverified.")
    s.add_argument("--run", required=True, metavar="RUN_ID")
    s.add_argument("--rubric", metavar="NAME", help="default: the rubric most recently used on the run")
    s.add_argument("--prefer", choices=["human", "judge"], help="which scores win where both exist")
    s.add_argument("--json", metavar="OUT")
    s.add_argument("--db", metavar="PATH")
    s.set_defaults(func=cmd_scores)

    r = sub.add_parser(
        "rubric", help="import, export or list rubrics",
        description="`rubric import FILE` validates the whole file first and stores nothing if any part is wrong; "
                    "`rubric export NAME --out FILE`; `rubric list`.")
    r.add_argument("action", choices=["import", "export", "list"])
    r.add_argument("target", nargs="?", metavar="FILE|NAME")
    r.add_argument("--out", metavar="FILE")
    r.add_argument("--db", metavar="PATH")
    r.set_defaults(func=cmd_rubric)
