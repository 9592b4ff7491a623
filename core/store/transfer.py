"""Moving data between stores: a local file into a team store (`store migrate`), and run bundles
(`export-run` / `import-run`) for machines that cannot reach the store.

Both copy rows by their natural keys (``TABLE_KEYS``: the keys the local schema declares, which DuckLake
cannot), so running either twice leaves the same rows as running it once. Each copy is one transaction:
all or nothing, retried when another writer's commit conflicts.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import duckdb

from core.errors import UserError
from core.store.db import (
    _cursor, _one_line, connect, is_lake, retrying, store_target,
)

BUNDLE_FORMAT = "slm-selector-run-bundle"
BUNDLE_VERSION = 1

# Natural keys of every table (what the local schema's PRIMARY KEYs say; DuckLake keeps none).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "endpoints": ("name",), "settings": ("key",),
    "runs": ("run_id",), "run_prompts": ("run_id", "prompt_id"),
    "run_models": ("run_id", "model", "backend", "concurrency"), "requests": ("request_id",),
    "rubrics": ("name",), "rubric_criteria": ("rubric", "name"), "rubric_prompts": ("rubric", "prompt_id"),
    "rubric_checks": ("rubric", "prompt_id", "position"), "check_results": ("request_id", "rubric", "check_key"),
    "human_scores": ("request_id", "rubric", "rater", "criterion"), "human_comments": ("request_id", "rubric", "rater"),
    "judge_templates": ("version",), "judge_runs": ("judge_run_id",), "judgements": ("judgement_id",),
    "judge_scores": ("judgement_id", "criterion"), "pairwise_verdicts": ("judge_run_id", "request_a", "request_b"),
    "decisions": ("name",), "length_sweeps": ("run_id", "model", "backend"),
}
SKIP = {"schema_migrations"}   # each store keeps its own: migrations run by the store's runner


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(con, catalog: str, table: str) -> dict[str, str]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = ? AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [catalog, table]).fetchall()
    return dict(rows)


def _tables(con, catalog: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = 'main' "
        "AND table_type = 'BASE TABLE' ORDER BY table_name", [catalog]).fetchall()]


def _current_catalog(con) -> str:
    return con.execute("SELECT current_database()").fetchone()[0]


def _replace_rows(con, table: str, source_sql: str, columns: list[str], types: dict[str, str]) -> int:
    """Rows of ``source_sql`` replace the rows with the same key in ``table`` (no key: only new rows are added)."""
    cols = ", ".join(_q(c) for c in columns)
    select = ", ".join(f"CAST({_q(c)} AS {types[c]}) AS {_q(c)}" for c in columns)
    keys = [k for k in TABLE_KEYS.get(table, ()) if k in columns]
    incoming = f"(SELECT {select} FROM ({source_sql}))"
    if keys:
        match = " AND ".join(f"s.{_q(k)} IS NOT DISTINCT FROM t.{_q(k)}" for k in keys)
        con.execute(f"DELETE FROM {_q(table)} t WHERE EXISTS (SELECT 1 FROM {incoming} s WHERE {match})")
        con.execute(f"INSERT INTO {_q(table)} ({cols}) SELECT {cols} FROM {incoming}")
    else:
        con.execute(f"INSERT INTO {_q(table)} ({cols}) SELECT {cols} FROM {incoming} "
                    f"EXCEPT SELECT {cols} FROM {_q(table)}")
    return con.execute(f"SELECT count(*) FROM ({source_sql})").fetchone()[0]


# ------------------------------------------------------------------ local file -> team store

def migrate_file(src: str | Path, to: str) -> dict[str, int]:
    """Copy every row of the local DuckDB file ``src`` into the store ``to``; {table: rows copied}. Idempotent."""
    src = Path(src).expanduser().resolve()
    if not src.exists():
        raise UserError(f"no such database file: {src}")
    if is_lake(str(src)) or not is_lake(to):
        raise UserError("store migrate copies a local DuckDB file into a team store: "
                        "python -m core store migrate FILE --to ducklake:...")
    with connect(src):      # bring the file to the current schema first (what the app would do on open)
        pass
    with connect(to):       # and the team store
        pass
    return _copy_file(src, to)


@retrying
def _copy_file(src: Path, to: str) -> dict[str, int]:
    cur = _cursor(store_target(to), 0)
    alias = "slm_src"
    try:
        try:
            cur.execute(f"ATTACH '{str(src).replace(chr(39), chr(39) * 2)}' AS {alias} (READ_ONLY)")
        except duckdb.Error as exc:
            raise UserError(f"cannot open {src}: {_one_line(exc)}") from exc
        try:
            lake = _current_catalog(cur)
            copied: dict[str, int] = {}
            cur.begin()
            try:
                for table in _tables(cur, alias):
                    if table in SKIP:
                        continue
                    target_cols = _columns(cur, lake, table)
                    if not target_cols:
                        raise UserError(f"the team store has no table {table}: update the app on every machine first")
                    src_cols = _columns(cur, alias, table)
                    common = [c for c in src_cols if c in target_cols]
                    copied[table] = _replace_rows(cur, table, f"SELECT * FROM {alias}.main.{_q(table)}", common,
                                                  target_cols)
                cur.commit()
            except BaseException:
                cur.rollback()
                raise
            return copied
        finally:
            cur.execute(f"DETACH {alias}")
    finally:
        cur.close()


# ------------------------------------------------------------------ run bundles

def _bundle_queries(con, run_id: str) -> dict[str, str]:
    """{table: SELECT of the run's rows} for every table that holds something of the run."""
    rid = "'" + run_id.replace("'", "''") + "'"
    rubrics = (f"(SELECT rubric FROM check_results WHERE run_id = {rid} UNION SELECT rubric FROM human_scores "
               f"WHERE run_id = {rid} UNION SELECT rubric FROM judge_runs WHERE run_id = {rid})")
    q = {
        "rubrics": f"SELECT * FROM rubrics WHERE name IN {rubrics}",
        "rubric_criteria": f"SELECT * FROM rubric_criteria WHERE rubric IN {rubrics}",
        "rubric_prompts": f"SELECT * FROM rubric_prompts WHERE rubric IN {rubrics}",
        "rubric_checks": f"SELECT * FROM rubric_checks WHERE rubric IN {rubrics}",
        "judge_templates": f"SELECT * FROM judge_templates WHERE version IN "
                           f"(SELECT template_version FROM judge_runs WHERE run_id = {rid})",
        "judge_scores": f"SELECT * FROM judge_scores WHERE judgement_id IN "
                        f"(SELECT judgement_id FROM judgements WHERE run_id = {rid})",
    }
    catalog = _current_catalog(con)
    for table in _tables(con, catalog):
        if table not in q and table not in SKIP and "run_id" in _columns(con, catalog, table):
            q[table] = f"SELECT * FROM {_q(table)} WHERE run_id = {rid}"
    return q


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_run(run_id: str, out: str | Path) -> dict:
    """Write run ``run_id`` (benchmark rows, scores, judgements, rubrics it used) to a zip; returns the manifest."""
    out = Path(out).expanduser().resolve()
    tmp = Path(tempfile.mkdtemp(prefix="slm-bundle-"))
    try:
        with connect() as con:
            if not con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]:
                raise UserError(f"unknown run id {run_id}")
            catalog = _current_catalog(con)
            versions = sorted({r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()})
            tables = {}
            for table, sql in sorted(_bundle_queries(con, run_id).items()):
                name = f"{table}.parquet"
                path = tmp / name
                con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
                rows = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
                tables[table] = {"file": name, "rows": rows,
                                 "columns": [[c, t] for c, t in _columns(con, catalog, table).items()]}
        for info in tables.values():
            info["sha256"] = _sha256(tmp / info["file"])
        manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "run_id": run_id,
                    "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "migrations": versions, "tables": tables}
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(out.name + ".part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
            for info in tables.values():
                z.write(tmp / info["file"], info["file"])
        os.replace(part, out)
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_bundle(path: Path, tmp: Path) -> dict:
    """Unpack and check a bundle: format, file names, sha256 and row counts; the manifest, or a one-line refusal."""
    bad = f"bundle {path.name} refused"
    try:
        with zipfile.ZipFile(path) as z:
            try:
                manifest = json.loads(z.read("manifest.json"))
            except KeyError:
                raise UserError(f"{bad}: no manifest.json (not a run bundle)") from None
            if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
                raise UserError(f"{bad}: not a run bundle (format {manifest.get('format') if isinstance(manifest, dict) else '?'})")
            if manifest.get("version") != BUNDLE_VERSION:
                raise UserError(f"{bad}: bundle version {manifest.get('version')} (this app reads {BUNDLE_VERSION})")
            tables = manifest.get("tables")
            if not isinstance(tables, dict) or not isinstance(manifest.get("run_id"), str):
                raise UserError(f"{bad}: the manifest has no run id or tables")
            for table, info in tables.items():
                name = info.get("file") if isinstance(info, dict) else None
                if not isinstance(name, str) or name != f"{table}.parquet" or "/" in name or "\\" in name:
                    raise UserError(f"{bad}: unexpected file name for table {table!r}")
                try:
                    data = z.read(name)
                except KeyError:
                    raise UserError(f"{bad}: {name} is missing") from None
                if hashlib.sha256(data).hexdigest() != info.get("sha256"):
                    raise UserError(f"{bad}: {name} does not match its sha256 in the manifest (damaged or altered)")
                (tmp / name).write_bytes(data)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{bad}: not a zip file ({exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{bad}: unreadable manifest ({' '.join(str(exc).split())})") from None
    con = duckdb.connect()
    try:
        for table, info in tables.items():
            try:
                n = con.execute("SELECT count(*) FROM read_parquet(?)", [str(tmp / info["file"])]).fetchone()[0]
            except duckdb.Error as exc:
                raise UserError(f"{bad}: {info['file']} is not readable Parquet ({_one_line(exc)})") from None
            if n != info.get("rows"):
                raise UserError(f"{bad}: {info['file']} has {n} rows, the manifest says {info.get('rows')}")
    finally:
        con.close()
    return manifest


def import_run(path: str | Path) -> dict:
    """Import a run bundle into the store in use, in one transaction; {"run_id", "tables": {table: rows}}."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"no such bundle: {path}")
    tmp = Path(tempfile.mkdtemp(prefix="slm-bundle-"))
    try:
        manifest = _read_bundle(path, tmp)
        return _import(manifest, tmp, path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@retrying
def _import(manifest: dict, tmp: Path, name: str) -> dict:
    bad = f"bundle {name} refused"
    counts = {}
    with connect() as con:
        catalog = _current_catalog(con)
        have = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
        missing = sorted(set(manifest.get("migrations") or []) - have)
        if missing:
            raise UserError(f"{bad}: it was made with migrations {missing} this store lacks (update the app)")
        for table, info in sorted(manifest["tables"].items()):
            target = _columns(con, catalog, table)
            if not target:
                raise UserError(f"{bad}: table {table} does not exist in this store")
            cols = [c for c, _ in info.get("columns") or []]
            for c, t in info.get("columns") or []:
                if c not in target:
                    raise UserError(f"{bad}: column {table}.{c} does not exist in this store")
                if target[c] != t:
                    raise UserError(f"{bad}: column {table}.{c} is {t} in the bundle, {target[c]} in this store")
            file = str(tmp / info["file"]).replace("'", "''")
            counts[table] = _replace_rows(con, table, f"SELECT * FROM read_parquet('{file}')", cols, target)
    return {"run_id": manifest["run_id"], "tables": counts}
