"""A local file into a team store (`store migrate`), and the row copy bundles use too.

Rows are copied by their natural keys (``TABLE_KEYS``: the keys the local schema declares, which DuckLake
cannot), so running it twice leaves the same rows as running it once. Each copy is one transaction: all or
nothing, retried when another writer's commit conflicts."""
from __future__ import annotations

from pathlib import Path

import duckdb

from core.errors import UserError, one_line
from core.store.db import _cursor, connect, is_lake, retrying, store_target


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
    "campaigns": ("name", "version"), "campaign_runs": ("run_id",),
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
            raise UserError(f"cannot open {src}: {one_line(exc)}") from exc
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
