"""Run bundles (`export-run` / `import-run`) for machines that cannot reach the store: one run's tables as
Parquet files and a manifest, checked (sizes, hashes, row counts, columns and types) before one transaction
imports them. Rows are copied by their natural keys (``core.store.migrate.TABLE_KEYS``), so importing twice
leaves the same rows as once."""
from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import duckdb

from core.errors import UserError, one_line
from core.store.bundle_checks import add_rubrics, campaign_link_refusal, check_devices
from core.store.db import _is_conflict, connect, retrying
from core.store.migrate import TABLE_KEYS, _columns, _current_catalog, _q


BUNDLE_FORMAT = "slm-selector-run-bundle"
BUNDLE_VERSION = 2   # 2: one run only, rubric versions carried

# A bundle is one run and nothing else. Its run-scoped tables hold that run's rows only (every row's run id is
# the manifest's; judge_scores belong to the bundle's judgements); rubrics and judge templates are only ever
# added (other content than the store's becomes a new version); endpoints, settings, decisions and migrations
# are never read from a bundle. Sizes are checked from the zip's directory before anything is unpacked.

RUN_TABLES = ("runs", "run_prompts", "run_models", "requests", "check_results", "human_scores", "human_comments",
              "judge_runs", "judgements", "judge_scores", "pairwise_verdicts", "campaign_runs")


RUBRIC_TABLES = ("rubrics", "rubric_criteria", "rubric_prompts", "rubric_checks")
ADDED_TABLES = RUBRIC_TABLES + ("rubric_versions", "judge_templates")
BUNDLE_TABLES = RUN_TABLES + ADDED_TABLES
MAX_RATIO = 100          # uncompressed / compressed size of one entry (Parquet is compressed already)
_CHUNK = 1 << 20
_TYPE = re.compile(r"^[A-Z][A-Z0-9_]*(\([0-9, ]+\))?(\[\])?$")


def _lit(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_manifest(manifest, bad: str, max_rows: int) -> None:
    """The manifest's shape, or a one-line refusal naming the field."""
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"{bad}: not a run bundle (format {str(fmt)[:40]!r})")
    if not _is_int(manifest.get("version")) or manifest["version"] != BUNDLE_VERSION:
        raise UserError(f"{bad}: bundle version {str(manifest.get('version'))[:20]} (this app reads {BUNDLE_VERSION}: "
                        "export the run again with this version)")
    rid = manifest.get("run_id")
    if not isinstance(rid, str) or not rid.strip() or len(rid) > 200:
        raise UserError(f"{bad}: the manifest's run_id is not a run id")
    migrations = manifest.get("migrations", [])
    if not isinstance(migrations, list) or not all(_is_int(v) for v in migrations):
        raise UserError(f"{bad}: the manifest's migrations are not a list of numbers")
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or "runs" not in tables:
        raise UserError(f"{bad}: the manifest has no tables (or no runs table)")
    for table, info in tables.items():
        if table not in BUNDLE_TABLES:
            raise UserError(f"{bad}: table {str(table)[:60]!r} is not part of a run bundle "
                            f"(a bundle carries {', '.join(BUNDLE_TABLES)})")
        if not isinstance(info, dict):
            raise UserError(f"{bad}: the manifest's entry for {table} is not an object")
        if info.get("file") != f"{table}.parquet":
            raise UserError(f"{bad}: unexpected file name for table {table!r}")
        rows = info.get("rows")
        if not _is_int(rows) or rows < 0:
            raise UserError(f"{bad}: {table}: rows is {str(rows)[:20]}, not a whole number of rows")
        if rows > max_rows:
            raise UserError(f"{bad}: {table} has {rows} rows (the limit is {max_rows}, SLM_MAX_BUNDLE_ROWS)")
        digest = info.get("sha256")
        if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
            raise UserError(f"{bad}: {table}: sha256 is not a sha256")
        cols = info.get("columns")
        if not isinstance(cols, list) or not cols or not all(
                isinstance(c, list) and len(c) == 2 and all(isinstance(x, str) and x for x in c) for c in cols):
            raise UserError(f"{bad}: {table}: columns must be a non-empty list of [name, type] pairs")
        if len({c for c, _ in cols}) != len(cols):
            raise UserError(f"{bad}: {table}: a column is named twice")
        for c, t in cols:
            if len(c) > 100 or not _TYPE.match(t):
                raise UserError(f"{bad}: {table}: column {c[:40]!r} has type {t[:40]!r}, not a column type")
    if tables["runs"]["rows"] != 1:
        raise UserError(f"{bad}: a bundle holds one run, its runs table has {tables['runs']['rows']} rows")


def _unpack(z: zipfile.ZipFile, item: zipfile.ZipInfo, dest: Path | None, bad: str) -> tuple[bytes | None, str]:
    """Stream one entry to ``dest`` (or into memory when None) in chunks, hashing as it goes and never past
    the size the zip's directory declares; (the bytes or None, sha256)."""
    h = hashlib.sha256()
    left = item.file_size
    parts = []
    with z.open(item) as src, (open(dest, "wb") if dest is not None else _NullFile()) as out:
        while True:
            block = src.read(min(_CHUNK, left + 1))
            if not block:
                break
            left -= len(block)
            if left < 0:
                raise UserError(f"{bad}: {item.filename} is larger than the zip says")
            h.update(block)
            if dest is None:
                parts.append(block)
            else:
                out.write(block)
    return (b"".join(parts) if dest is None else None), h.hexdigest()


class _NullFile:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        pass


def _read_bundle(path: Path, tmp: Path) -> dict:
    """Unpack and check a bundle: sizes first (from the zip's directory), then the manifest (strict JSON, checked
    field by field), then each file streamed to ``tmp`` with its sha256, row count and columns. The manifest,
    or a one-line refusal."""
    from core.config import limit, max_file_bytes
    from core.output import load_json

    bad = f"bundle {path.name} refused"
    max_total = limit("SLM_MAX_BUNDLE_MB") * 1024 * 1024
    max_rows = limit("SLM_MAX_BUNDLE_ROWS")
    try:
        with zipfile.ZipFile(path) as z:
            items = z.infolist()
            names = [i.filename for i in items]
            allowed = {"manifest.json"} | {f"{t}.parquet" for t in BUNDLE_TABLES}
            for n in names:
                if n not in allowed:
                    raise UserError(f"{bad}: {n[:60]!r} is not part of a run bundle (a bundle carries "
                                    f"{', '.join(BUNDLE_TABLES)})")
            if len(set(names)) != len(names):
                raise UserError(f"{bad}: an entry is there twice (not a run bundle)")
            total = sum(i.file_size for i in items)
            if total > max_total:
                raise UserError(f"{bad}: it unpacks to {total / 2**20:.0f} MB (the limit is "
                                f"{max_total / 2**20:.0f} MB, SLM_MAX_BUNDLE_MB)")
            for i in items:
                if i.file_size > 1 << 20 and i.file_size > MAX_RATIO * max(i.compress_size, 1):
                    raise UserError(f"{bad}: {i.filename[:60]} unpacks {i.file_size // max(i.compress_size, 1)} "
                                    f"times its packed size (a zip bomb?)")
            try:
                item = z.getinfo("manifest.json")
            except KeyError:
                raise UserError(f"{bad}: no manifest.json (not a run bundle)") from None
            if item.file_size > max_file_bytes():
                raise UserError(f"{bad}: manifest.json is {item.file_size / 2**20:.1f} MB (SLM_MAX_FILE_MB)")
            raw, _ = _unpack(z, item, None, bad)
            manifest = load_json(raw, name=f"{path.name}: manifest.json", what="bundle")
            _check_manifest(manifest, bad, max_rows)
            for table, info in manifest["tables"].items():
                name = info["file"]
                try:
                    item = z.getinfo(name)
                except KeyError:
                    raise UserError(f"{bad}: {name} is missing") from None
                _, digest = _unpack(z, item, tmp / name, bad)
                if digest != info["sha256"]:
                    raise UserError(f"{bad}: {name} does not match its sha256 in the manifest (damaged or altered)")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError,
            zlib.error, OSError) as exc:
        raise UserError(f"{bad}: not a readable zip file ({one_line(exc, 160)})") from None
    con = duckdb.connect()
    try:
        for table, info in manifest["tables"].items():
            file = str(tmp / info["file"])
            try:
                n = con.execute("SELECT count(*) FROM read_parquet(?)", [file]).fetchone()[0]
                have = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [file]).fetchall()]
            except duckdb.Error as exc:
                raise UserError(f"{bad}: {info['file']} is not readable Parquet ({one_line(exc, 160)})") from None
            if n != info["rows"]:
                raise UserError(f"{bad}: {info['file']} has {n} rows, the manifest says {info['rows']}")
            said = [c for c, _ in info["columns"]]
            if sorted(have) != sorted(said):
                gone, extra = sorted(set(said) - set(have)), sorted(set(have) - set(said))
                raise UserError(f"{bad}: {info['file']}'s columns are not the manifest's "
                                f"(missing {', '.join(gone)[:120] or 'none'}; not listed {', '.join(extra)[:120] or 'none'})")
        try:
            _check_rows(con, manifest, tmp, bad)
        except duckdb.Error as exc:      # e.g. a run_id column of numbers: the bundle's fault, one line
            raise UserError(f"{bad}: {one_line(exc, 240)}") from None
    finally:
        con.close()
    return manifest


def _file(tmp: Path, manifest: dict, table: str) -> str | None:
    info = manifest["tables"].get(table)
    return str(tmp / info["file"]).replace("'", "''") if info else None


def _has_col(manifest: dict, table: str, col: str) -> bool:
    return any(c == col for c, _ in manifest["tables"][table]["columns"])


def _check_rows(con, manifest: dict, tmp: Path, bad: str) -> None:
    """Every row belongs to the manifest's run: run_id equal to it, judge scores of its judgements, rubrics and
    judge templates that its rows use (a bundle brings nothing else)."""
    rid = _lit(manifest["run_id"])
    for table in RUN_TABLES:
        f = _file(tmp, manifest, table)
        if f is None or table == "judge_scores":
            continue
        if not _has_col(manifest, table, "run_id"):
            raise UserError(f"{bad}: {table} has no run_id column")
        other = con.execute(f"SELECT count(*) FROM read_parquet('{f}') WHERE run_id IS DISTINCT FROM {rid}").fetchone()[0]
        if other:
            raise UserError(f"{bad}: {other} {table} rows belong to another run than {manifest['run_id'][:60]}")
    f = _file(tmp, manifest, "judge_scores")
    if f is not None:
        j = _file(tmp, manifest, "judgements")
        known = f"(SELECT judgement_id FROM read_parquet('{j}'))" if j else "(SELECT NULL::VARCHAR WHERE false)"
        stray = con.execute(f"SELECT count(*) FROM read_parquet('{f}') WHERE judgement_id IS NULL OR "
                            f"judgement_id NOT IN {known}").fetchone()[0]
        if stray:
            raise UserError(f"{bad}: {stray} judge_scores rows belong to no judgement of the run")
    used = [f"SELECT rubric AS r FROM read_parquet('{_file(tmp, manifest, t)}')"
            for t in ("check_results", "human_scores", "judge_runs", "judgements") if t in manifest["tables"]]
    used_sql = " UNION ".join(used) or "SELECT NULL::VARCHAR AS r WHERE false"
    for table in ADDED_TABLES[:-1]:
        f = _file(tmp, manifest, table)
        if f is None:
            continue
        col = "name" if table == "rubrics" else "rubric"
        stray = con.execute(f"SELECT count(*) FROM read_parquet('{f}') WHERE {col} IS NULL OR {col} NOT IN "
                            f"(SELECT r FROM ({used_sql}) WHERE r IS NOT NULL)").fetchone()[0]
        if stray:
            raise UserError(f"{bad}: {stray} {table} rows are for rubrics the run does not use")
    f = _file(tmp, manifest, "judge_templates")
    if f is not None:
        tv = [f"SELECT template_version AS v FROM read_parquet('{_file(tmp, manifest, t)}')"
              for t in ("judge_runs", "judgements", "pairwise_verdicts") if t in manifest["tables"]]
        tv_sql = " UNION ".join(tv) or "SELECT NULL::VARCHAR AS v WHERE false"
        stray = con.execute(f"SELECT count(*) FROM read_parquet('{f}') WHERE version IS NULL OR version NOT IN "
                            f"(SELECT v FROM ({tv_sql}) WHERE v IS NOT NULL)").fetchone()[0]
        if stray:
            raise UserError(f"{bad}: {stray} judge_templates rows are templates the run does not use")


def import_run(path: str | Path, *, replace: bool = False, check_rubric: Callable[[dict], Any] | None = None) -> dict:
    """Import a run bundle into the store in use, in one transaction; {"run_id", "tables": {table: rows},
    "replaced": bool, "notes": [...]}. A run the store already holds is refused unless ``replace`` (which
    replaces that run's rows, and only those). ``check_rubric`` is ``rubric import``'s validation (a rubric
    document -> a Rubric, or an error): every rubric version the bundle carries passes it, and a rubric new to
    this store gets its current form from its newest validated version, never from the bundle's rows; without
    it a bundle that carries rubrics is refused. Its campaign link is taken only when it names the plan of this
    store's campaign and the device has no run of that campaign here yet (core.store.campaigns also checks,
    on every read, that a linked run ran the plan)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"no such bundle: {path}")
    tmp = Path(tempfile.mkdtemp(prefix="slm-bundle-"))
    try:
        manifest = _read_bundle(path, tmp)
        return _import(manifest, tmp, path.name, replace, check_rubric)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _import(manifest: dict, tmp: Path, name: str, replace: bool, check_rubric) -> dict:
    bad = f"bundle {name} refused"
    try:
        return _import_tx(manifest, tmp, bad, replace, check_rubric)
    except duckdb.Error as exc:
        raise UserError(f"{bad}: {one_line(exc, 240)}") from None


@retrying
def _import_tx(manifest: dict, tmp: Path, bad: str, replace: bool, check_rubric) -> dict:
    try:
        with connect() as con:
            return _import_rows(con, manifest, tmp, bad, replace, check_rubric)
    except duckdb.Error as exc:
        if _is_conflict(exc):
            raise                        # @retrying runs the transaction again
        raise UserError(f"{bad}: {one_line(exc, 240)}") from None


def _import_rows(con, manifest: dict, tmp: Path, bad: str, replace: bool, check_rubric) -> dict:
    run_id = manifest["run_id"]
    rid = _lit(run_id)
    catalog = _current_catalog(con)
    have = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    missing = sorted(set(manifest.get("migrations") or []) - have)
    if missing:
        raise UserError(f"{bad}: it was made with migrations {missing[:10]} this store lacks (update the app)")
    targets = {}
    for table, info in manifest["tables"].items():
        target = _columns(con, catalog, table)
        if not target:
            raise UserError(f"{bad}: table {table} does not exist in this store")
        for c, t in info["columns"]:
            if c not in target:
                raise UserError(f"{bad}: column {table}.{c[:60]} does not exist in this store")
            if target[c] != t:
                raise UserError(f"{bad}: column {table}.{c} is {t[:40]} in the bundle, {target[c]} in this store")
        targets[table] = target
    exists = con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] > 0
    if exists and not replace:
        raise UserError(f"{bad}: run {run_id[:60]} is already in this store (import-run --replace replaces it)")
    # a key of the bundle's rows that another run holds in this store: that run's rows are never touched
    for table in RUN_TABLES:
        f = _file(tmp, manifest, table)
        if f is None:
            continue
        keys = [k for k in TABLE_KEYS[table] if k != "run_id"]
        if table == "judge_scores":
            clash = (f"SELECT count(*) FROM judge_scores t WHERE t.judgement_id IN (SELECT judgement_id FROM "
                     f"read_parquet('{f}')) AND t.judgement_id NOT IN (SELECT judgement_id FROM judgements "
                     f"WHERE run_id = {rid})")
        elif keys and "run_id" not in TABLE_KEYS[table]:
            match = " AND ".join(f"s.{_q(k)} = t.{_q(k)}" for k in keys)
            clash = (f"SELECT count(*) FROM {_q(table)} t WHERE t.run_id IS DISTINCT FROM {rid} AND EXISTS "
                     f"(SELECT 1 FROM read_parquet('{f}') s WHERE {match})")
        else:
            continue
        n = con.execute(clash).fetchone()[0]
        if n:
            raise UserError(f"{bad}: {n} {table} rows have the keys of another run's rows in this store")
    check_devices(con, {t: _file(tmp, manifest, t) for t in ("runs", "campaign_runs")
                        if t in manifest["tables"] and _has_col(manifest, t, "device")}, bad)
    link_note = campaign_link_refusal(con, _file(tmp, manifest, "campaign_runs"), run_id)
    rubric_map = add_rubrics(con, _file(tmp, manifest, "rubric_versions"), bad, check_rubric)
    template_map = _add_templates(con, manifest, tmp, bad)
    if exists:
        con.execute(f"DELETE FROM judge_scores WHERE judgement_id IN (SELECT judgement_id FROM judgements "
                    f"WHERE run_id = {rid})")
        for table in RUN_TABLES:
            if table != "judge_scores":
                con.execute(f"DELETE FROM {_q(table)} WHERE run_id = {rid}")
    counts = {}
    for table in RUN_TABLES:
        f = _file(tmp, manifest, table)
        if f is None or (table == "campaign_runs" and link_note):
            continue
        cols = [c for c, _ in manifest["tables"][table]["columns"]]
        exprs = []
        for c in cols:
            expr = _q(c)
            if c == "rubric_version":   # the bundle's numbering -> this store's; a version it does not carry: unknown
                expr = ("CASE " + " ".join(f"WHEN rubric = {_lit(r)} AND rubric_version = {_lit(v)} THEN {_lit(n)}"
                                           for (r, v), n in rubric_map.items()) + " ELSE NULL END"
                        if rubric_map else "NULL")
            elif c == "template_version" and template_map:
                expr = ("CASE " + " ".join(f"WHEN template_version = {_lit(v)} THEN {_lit(n)}"
                                           for v, n in template_map.items()) + f" ELSE {expr} END")
            exprs.append(f"CAST({expr} AS {targets[table][c]})")
        con.execute(f"INSERT INTO {_q(table)} ({', '.join(_q(c) for c in cols)}) SELECT {', '.join(exprs)} "
                    f"FROM read_parquet('{f}')")
        counts[table] = manifest["tables"][table]["rows"]
    return {"run_id": run_id, "tables": counts, "replaced": exists, "notes": [link_note] if link_note else []}


def _rows(con, f: str, cols: str) -> list[tuple]:
    return con.execute(f"SELECT {cols} FROM read_parquet('{f}')").fetchall()


def _add_templates(con, manifest: dict, tmp: Path, bad: str) -> dict[str, str]:
    """Add the bundle's judge templates: one this store lacks under its version; one whose version here holds
    other text under a new version ``VERSION+SHA8``. {bundle version: version here} where they differ."""
    mapping: dict[str, str] = {}
    f = _file(tmp, manifest, "judge_templates")
    if f is None:
        return mapping
    for version, kind, text, created in _rows(con, f, "version, kind, text, created_at"):
        if not isinstance(text, str) or not isinstance(kind, str):
            raise UserError(f"{bad}: judge template {str(version)[:60]} has no text")
        name = version
        row = con.execute("SELECT text FROM judge_templates WHERE version = ?", [name]).fetchone()
        if row is not None and row[0] != text:
            name = f"{version}+{hashlib.sha256(text.encode()).hexdigest()[:8]}"
            mapping[version] = name
            row = con.execute("SELECT text FROM judge_templates WHERE version = ?", [name]).fetchone()
        if row is None:
            con.execute("INSERT INTO judge_templates (version, kind, text, created_at) VALUES (?, ?, ?, ?)",
                        [name, kind, text, created])
    return mapping

