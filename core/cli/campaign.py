"""`python -m core campaign ...`: fleet campaigns, one plan that every target device runs.

    python -m core campaign create NAME --models ID[,ID...] --prompts FILE [--endpoint URL] [--api-key-env VAR]
        [--config models.json] [--rounds N] [--warmup N] [--max-tokens N] [--concurrency N[,N...]]
        [--lengths N[,N...]] [--order TEXT] [--devices a,b|any] [--new-version] [--db] [--json OUT]
    python -m core campaign create NAME --from plan.json [--new-version] [--db]
    python -m core campaign export NAME [--version N] --out plan.json [--db]
    python -m core campaign list [--db] [--json OUT]
    python -m core campaign show NAME [--version N] [--db] [--json OUT]
    python -m core campaign run NAME [--accept-endpoints] [--db] [--json OUT]   (this device: SLM_DEVICE / its label)

A plan names endpoints; it never decides where this machine's keys go. `campaign run` sends nothing to an
endpoint this machine has not accepted (core.catalog.accepted): it names them and stops, and
`--accept-endpoints` accepts them without a key. A key goes only to an endpoint registered on this machine with
its variable (`endpoint add NAME URL --api-key-env VAR`, or `campaign create --endpoint URL --api-key-env VAR`
typed here).
"""
from __future__ import annotations

import sys
import uuid

from core.errors import UserError
from core.output import term_text

DB_HELP = "store: DuckDB file or DuckLake URL (default data/slm_selector.duckdb, or SLM_DB)"


def register(subparsers) -> None:
    from core.cli.bench import _int_list
    p = subparsers.add_parser(
        "campaign", help="fleet campaigns: one benchmark plan every device runs",
        description="A campaign is one benchmark plan (models, prompt set, settings, target devices) stored in the "
                    "store; each device runs it with `campaign run`, and `campaign show` says which devices are "
                    "done, running, interrupted or missing.")
    sub = p.add_subparsers(dest="campaign_command", metavar="SUBCOMMAND")
    sub.required = True

    c = sub.add_parser("create", help="store a campaign's plan",
                       description="Store a campaign. The same plan again changes nothing; another plan under an "
                                   "existing name is refused unless --new-version (NAME v2, v3...).")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--from", dest="plan_file", metavar="FILE",
                   help="the plan from `campaign export` (another store's campaign: the same plan, the same hash); "
                        "instead of --models/--prompts/settings")
    c.add_argument("--models", "--model", dest="models", action="append", metavar="ID[,ID...]",
                   help="candidate models (repeat or comma-separate): ids at --endpoint, else local models "
                        "(Foundry Local / llama.cpp) resolved on each device")
    c.add_argument("--prompts", metavar="FILE", help="JSON prompt set (stored by content and sha256)")
    c.add_argument("--endpoint", metavar="URL", help="OpenAI-compatible endpoint serving the models")
    c.add_argument("--api-key-env", metavar="VAR", help="NAME of the environment variable holding the API key")
    c.add_argument("--config", metavar="models.json",
                   help="workshop-style models file: each model's size_mb (a device with less free memory skips it)")
    c.add_argument("--rounds", type=int, default=3, metavar="N", help="rounds over the prompt set (default 3)")
    c.add_argument("--warmup", type=int, default=1, metavar="N", help="warm-up requests per level (default 1)")
    c.add_argument("--max-tokens", type=int, default=256, metavar="N", help="max output tokens (default 256)")
    c.add_argument("--concurrency", type=_int_list, default=[1], metavar="N[,N...]", help="levels (default 1)")
    c.add_argument("--lengths", type=_int_list, default=None, metavar="N[,N...]",
                   help="prompt lengths of a length sweep (stored with the plan; `campaign run` runs no sweep yet)")
    c.add_argument("--order", default=None, metavar="TEXT",
                   help="request order, as `bench --order` (interleaved | blocked; default: the benchmark's)")
    c.add_argument("--devices", default="any", metavar="a,b|any",
                   help="target device labels, or 'any' (every device that joins; default)")
    c.add_argument("--new-version", action="store_true", help="the plan differs: store it as the next version")
    c.add_argument("--db", metavar="PATH", help=DB_HELP)
    c.add_argument("--json", metavar="OUT", help="write the stored campaign {name, version, created, ...} to OUT")
    c.set_defaults(func=create)

    e = sub.add_parser("export", help="write a campaign's plan to a file (for a store it cannot reach)",
                       description="Write a campaign version's plan (models, prompts, settings, devices) to a file; "
                                   "`campaign create NAME --from FILE` stores the same plan in another store, so runs "
                                   "bundled from there count here.")
    e.add_argument("name", metavar="NAME")
    e.add_argument("--version", type=int, default=None, metavar="N", help="a version (default the latest)")
    e.add_argument("--out", required=True, metavar="FILE", help="the plan file to write")
    e.add_argument("--db", metavar="PATH", help=DB_HELP)
    e.set_defaults(func=export)

    ls = sub.add_parser("list", help="every campaign version", description="List every campaign version.")
    ls.add_argument("--db", metavar="PATH", help=DB_HELP)
    ls.add_argument("--json", metavar="OUT", help="write the list to OUT")
    ls.set_defaults(func=list_)

    s = sub.add_parser("show", help="a campaign's state per device",
                       description="Per device: not started / running / interrupted / done (or skipped), with "
                                   "measured requests against the plan, skipped models and missing targets.")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--version", type=int, default=None, metavar="N", help="a version (default the latest)")
    s.add_argument("--db", metavar="PATH", help=DB_HELP)
    s.add_argument("--json", metavar="OUT", help="write the status to OUT")
    s.set_defaults(func=show)

    r = sub.add_parser("run", help="run a campaign's plan on this device",
                       description="Run the campaign's latest version on this device (label: SLM_DEVICE or the "
                                   "saved one): models it cannot run are skipped with the reason, an interrupted "
                                   "run is resumed, a done one is left as it is. Exit codes as `bench`.")
    r.add_argument("name", metavar="NAME")
    r.add_argument("--accept-endpoints", action="store_true",
                   help="accept the plan's endpoints on this machine (shown first; no key is sent to them: "
                        "`endpoint add NAME URL --api-key-env VAR` registers one with its key)")
    r.add_argument("--db", metavar="PATH", help=DB_HELP)
    r.add_argument("--json", metavar="OUT", help='write {"run_id", "results": [...]} to OUT')
    r.set_defaults(func=run)


def _names(items: list[str]) -> list[str]:
    return list(dict.fromkeys(x.strip() for item in items for x in item.split(",") if x.strip()))


def create(args) -> int:
    from core.bench.campaign import make_plan, parse_devices, plan_settings, read_plan_file
    from core.bench.run.inputs import Settings, load_models_config, load_prompts
    from core.output import write_json
    from core.store import campaigns as store

    if args.plan_file:
        if args.models or args.prompts:
            raise UserError("--from FILE holds the whole plan: leave out --models and --prompts")
        plan, prompt_set = read_plan_file(args.plan_file)
    else:
        if not args.models or not args.prompts:
            raise UserError("a campaign needs --models and --prompts (or --from FILE)")
        prompt_set = load_prompts(args.prompts)
        config = load_models_config(args.config) if args.config else None
        settings = Settings(rounds=args.rounds, warmup=args.warmup, max_tokens=args.max_tokens,
                            concurrency=args.concurrency)
        plan = make_plan(_names(args.models), prompt_set=prompt_set, settings=settings,
                         devices=parse_devices(args.devices), endpoint=args.endpoint, api_key_env=args.api_key_env,
                         config=config, lengths=args.lengths, order=args.order)
    _, ignored = plan_settings(plan, len(prompt_set.prompts))   # the benchmark accepts the plan before it is stored
    out = store.create_campaign(args.name, plan, prompt_set.prompts, prompt_set.name, new_version=args.new_version)
    shown = store.display_name(out["name"], out["version"])
    print(f"campaign {shown} {'created' if out['created'] else 'unchanged (same plan)'}: "
          f"{len(plan['models'])} model(s), {len(prompt_set.prompts)} prompt(s), devices: "
          f"{', '.join(plan['devices']) if plan['devices'] != 'any' else 'any'}")
    from core.catalog import accepted
    if not args.plan_file and args.endpoint:        # typed here: this machine accepts it, with the variable given
        accepted.accept(plan["models"][0]["endpoint"], plan["models"][0]["api_key_env"])
    _say_endpoints(plan, shown)
    if ignored:
        print(f"note: {', '.join(ignored)} stored with the plan; this benchmark does not apply them yet",
              file=sys.stderr)
    if args.json:
        write_json(args.json, {**out, "display": shown, "plan": plan})
    return 0


def export(args) -> int:
    from core.bench.campaign import plan_file
    from core.output import write_json
    from core.store import campaigns as store
    c = store.get_campaign(args.name, args.version)
    write_json(args.out, plan_file(c))
    print(f"campaign {store.display_name(c['name'], c['version'])}: plan written to {args.out}")
    return 0


def list_(args) -> int:
    from core.output import write_json
    from core.store import campaigns as store
    rows = store.list_campaigns()
    if not rows:
        print("no campaign yet (python -m core campaign create NAME ...)")
    for r in rows:
        devices = ", ".join(r["devices"]) if r["devices"] != "any" else "any"
        print(f"{r['display']:30} {len(r['models'])} model(s)  devices: {devices}  ran on {r['devices_ran']}")
    if args.json:
        write_json(args.json, rows)
    return 0


def show(args) -> int:
    from core.output import write_json
    from core.store import campaigns as store
    status = store.campaign_status(args.name, args.version)
    print(f"campaign {status['display']} (plan {status['plan_sha256'][:12]})")
    for d in status["devices"]:
        extra = "" if d["target"] else "  (not a target)"
        failed = f", {d['failed']} failed" if d["failed"] else ""
        print(term_text(f"  {d['device']:24} {d['state']:12} {d['requests']}/{d['planned']} requests{failed}{extra}"))
        for s in d["skipped"]:
            print(term_text(f"      skipped {s['model']} [{s['engine']}]: {s['reason']}"))
    if status["missing"]:
        print(f"missing: {', '.join(status['missing'])}")
    if args.json:
        write_json(args.json, status)
    return 0


def _say_endpoints(plan: dict, shown: str) -> None:
    """Name the plan's endpoints this machine has not accepted: `campaign run` sends nothing there until then."""
    from core.bench.campaign import pending_endpoints
    pending = pending_endpoints(plan)
    if pending:
        print(f"campaign {shown} sends requests to endpoint(s) not accepted on this machine: {', '.join(pending)}; "
              "check them, then `campaign run NAME --accept-endpoints` (no key is sent to them)", file=sys.stderr)


def accept_endpoints(plan: dict, shown: str, accept: bool) -> None:
    """Before anything is sent: every endpoint of the plan accepted on this machine, or UserError naming them.
    ``accept``: the pending ones are accepted now, without a key (the user saw them in the message or the page)."""
    from core.bench.campaign import accept_pending, pending_endpoints
    pending = pending_endpoints(plan)
    if pending and not accept:
        hints = sorted({m["api_key_env"] for m in plan["models"] if m.get("api_key_env")})
        key = (f" (the plan suggests the key variable {', '.join(hints)}: only `endpoint add NAME URL --api-key-env "
               "VAR` on this machine sends a key)") if hints else ""
        raise UserError(f"campaign {shown} sends requests to endpoint(s) this machine has not accepted: "
                        f"{', '.join(pending)}; nothing was sent. Check them, then run again with "
                        f"--accept-endpoints (no key is sent to them){key}")
    for url in accept_pending(plan) if pending else []:
        print(f"accepted endpoint {url} on this machine (no key is sent to it)", file=sys.stderr)


def resolve_plan_models(plan: dict) -> tuple[list, list[dict]]:
    """(ModelSpecs this device runs, [{model, engine, reason}] it skips): not served / not installed, or too
    large for its free memory. Resolution is `bench`'s own (core.cli.bench.resolve_specs), one model at a time.
    The key variable of an endpoint is this machine's (core.catalog.accepted), never the plan's."""
    from core.bench.campaign import memory_reason
    from core.catalog import accepted
    from core.cli.bench import resolve_specs
    specs, skipped = [], []
    for m in plan["models"]:
        config = {m["model"]: {"size_mb": m["size_mb"]}} if m.get("size_mb") is not None else None
        try:
            key_env = accepted.key_env(m["endpoint"]) if m.get("endpoint") else None
            (spec,) = resolve_specs([m["model"]], m.get("endpoint"), key_env, config)
        except UserError as exc:
            skipped.append({"model": m["model"], "engine": m["engine"], "reason": f"cannot run here: {exc.one_line()}"})
            continue
        why = memory_reason(spec.disk_mb)
        if why:
            skipped.append({"model": m["model"], "engine": m["engine"], "reason": why})
            continue
        specs.append(spec)
    return specs, skipped


def run(args) -> int:
    from core.bench.campaign import plan_prompt_set, plan_settings
    from core.bench.run.runner import new_run_id
    from core.cli.bench import execute
    from core.config import device_label
    from core.output import write_json
    from core.store import campaigns as store

    c = store.get_campaign(args.name)
    shown = store.display_name(c["name"], c["version"])
    device = device_label()
    if c["devices"] != store.ANY and device not in c["devices"]:
        raise UserError(f"device {device!r} is not a target of campaign {shown} (targets: {', '.join(c['devices'])}; "
                        "set SLM_DEVICE to this device's label)")
    prompt_set = plan_prompt_set(c)
    settings, ignored = plan_settings(c["plan"], len(prompt_set.prompts))
    accept_endpoints(c["plan"], shown, args.accept_endpoints)
    if ignored:
        print(f"note: the plan's {', '.join(ignored)} are not applied by this benchmark", file=sys.stderr)
    link = store.device_link(c, device)
    state = store.device_state(link)
    if state == "done":
        print(f"campaign {shown} is already done on {device} (run {link['run_id']}): nothing to run")
        if args.json:
            from core.store import bench as db
            write_json(args.json, {"run_id": link["run_id"], "results": db.run_summary(link["run_id"])})
        return 0
    if state == "running":
        raise UserError(f"campaign {shown} is running on {device} already (run {link['run_id']})")
    if state == "interrupted":
        from core.bench.run.resume import plan_resume, resume_runner_kwargs
        resumed = plan_resume(link["run_id"], prompt_set)
        from core.catalog import accepted
        for spec in resumed.models:      # the key variable is this machine's, not what the stored run says
            spec.api_key_env = accepted.key_env(spec.endpoint) if spec.backend == "openai" and spec.endpoint else None
        print(f"campaign {shown} on {device}: resuming run {link['run_id']} ({resumed.missing} requests missing)",
              file=sys.stderr, flush=True)
        return execute(resumed.models, resumed.prompt_set, resumed.settings, resume_runner_kwargs(resumed), args.json)
    specs, skipped = resolve_plan_models(c["plan"])
    for s in skipped:
        print(f"skipped {term_text(s['model'])} [{s['engine']}]: {term_text(s['reason'])}", file=sys.stderr)
    if not specs:        # recorded once; a later `campaign run` looks again (an endpoint back up, a model installed)
        if state != "skipped" or link["skipped"] != skipped:
            store.link_run(f"{store.SKIPPED_PREFIX}{uuid.uuid4().hex[:12]}", c, device, skipped)
        print(f"campaign {shown}: {device} can run none of its models (recorded as skipped)")
        return 0
    run_id = new_run_id()
    store.link_run(run_id, c, device, skipped)     # before the run: a killed run is still the campaign's
    print(f"campaign {shown} on {device}: run {run_id}", file=sys.stderr, flush=True)
    return execute(specs, prompt_set, settings, {"run_id": run_id}, args.json)
