"""`python -m core store migrate|info`, `export-run`, `import-run`: the team store and run bundles."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("store", help="the team store: copy a local file into it, show what it holds",
                              description="SLM_DB (or --db) is a DuckDB file or a DuckLake URL: "
                                          "ducklake:sqlite:PATH or ducklake:postgres:CONNINFO (SLM_DATA_PATH: data files).")
    sub = p.add_subparsers(dest="store_command", metavar="ACTION")
    sub.required = True
    m = sub.add_parser("migrate", help="copy a local DuckDB file into a team store (twice is the same as once)")
    m.add_argument("file", metavar="FILE", help="the local DuckDB file")
    m.add_argument("--to", required=True, metavar="URL", help="ducklake:sqlite:PATH or ducklake:postgres:CONNINFO")
    m.set_defaults(func=run_migrate)
    i = sub.add_parser("info", help="the store in use: migrations, devices, row counts")
    i.add_argument("--db", metavar="STORE", help="DuckDB file or DuckLake URL (default $SLM_DB)")
    i.set_defaults(func=run_info)

    e = subparsers.add_parser("export-run", help="write one run to a bundle (Parquet tables + manifest) for another store")
    e.add_argument("run", metavar="RUN", help="run id")
    e.add_argument("--out", required=True, metavar="FILE.zip")
    e.add_argument("--db", metavar="STORE", help="DuckDB file or DuckLake URL (default $SLM_DB)")
    e.set_defaults(func=run_export)
    im = subparsers.add_parser("import-run", help="import a run bundle: one run and nothing else, all or nothing",
                               description="A bundle holds one run's rows (benchmark, scores, judgements) and the "
                                           "rubrics and judge templates it used, which are only ever added (other "
                                           "content becomes a new version). A run the store already holds is "
                                           "refused unless --replace. Sizes are checked before anything is unpacked "
                                           "(SLM_MAX_BUNDLE_MB, SLM_MAX_BUNDLE_ROWS).")
    im.add_argument("bundle", metavar="FILE.zip")
    im.add_argument("--replace", action="store_true", help="replace the run's rows when the store already holds it "
                                                          "(that run only)")
    im.add_argument("--db", metavar="STORE", help="DuckDB file or DuckLake URL (default $SLM_DB)")
    im.set_defaults(func=run_import)


def run_migrate(args: argparse.Namespace) -> int:
    from core.config import store_label
    from core.store.migrate import migrate_file
    copied = migrate_file(args.file, args.to)
    total = sum(copied.values())
    print(f"copied {total} rows from {len(copied)} tables into {store_label(args.to)}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from core.config import db_path, store_label
    from core.store import applied_migrations, devices
    print(f"store: {store_label(db_path())}")
    print("migrations: " + ", ".join(name for _, name in applied_migrations()))
    for d in devices.list_devices():
        print(f"device {d['device']}: {d['runs']} runs, last {d['last_run']}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from core.store.bundle_export import export_run
    manifest = export_run(args.run, args.out)
    rows = sum(t["rows"] for t in manifest["tables"].values())
    print(f"wrote {args.out}: run {args.run}, {len(manifest['tables'])} tables, {rows} rows")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from core.quality.rubrics import rubric_from_json
    from core.store.bundles import import_run
    res = import_run(args.bundle, replace=args.replace, check_rubric=rubric_from_json)
    verb = "replaced" if res["replaced"] else "imported"
    print(f"{verb} run {res['run_id']}: {sum(res['tables'].values())} rows in {len(res['tables'])} tables",
          file=sys.stdout)
    for note in res["notes"]:
        print(f"note: {note}", file=sys.stderr)
    return 0
