"""`export-run`: one run's tables as Parquet files and a manifest (row counts, column types, the sha256 of
every file) in one zip; what it holds is `core.store.bundles.BUNDLE_TABLES`, read back by `import_run`."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from core.errors import UserError
from core.store.db import connect
from core.store.migrate import _columns, _current_catalog, _q
from core.store.bundles import BUNDLE_FORMAT, BUNDLE_VERSION, RUN_TABLES, _CHUNK, _lit


def _bundle_queries(con, run_id: str) -> dict[str, str]:
    """{table: SELECT of the run's rows} for every table a bundle carries (BUNDLE_TABLES)."""
    rid = _lit(run_id)
    rubrics = (f"(SELECT rubric FROM check_results WHERE run_id = {rid} UNION SELECT rubric FROM human_scores "
               f"WHERE run_id = {rid} UNION SELECT rubric FROM judge_runs WHERE run_id = {rid})")
    q = {t: f"SELECT * FROM {_q(t)} WHERE run_id = {rid}" for t in RUN_TABLES}
    q["judge_scores"] = (f"SELECT * FROM judge_scores WHERE judgement_id IN "
                         f"(SELECT judgement_id FROM judgements WHERE run_id = {rid})")
    q["rubrics"] = f"SELECT * FROM rubrics WHERE name IN {rubrics}"
    for t in ("rubric_criteria", "rubric_prompts", "rubric_checks", "rubric_versions"):
        q[t] = f"SELECT * FROM {t} WHERE rubric IN {rubrics}"
    q["judge_templates"] = (f"SELECT * FROM judge_templates WHERE version IN (SELECT template_version FROM judge_runs "
                            f"WHERE run_id = {rid} UNION SELECT template_version FROM judgements WHERE run_id = {rid} "
                            f"UNION SELECT template_version FROM pairwise_verdicts WHERE run_id = {rid})")
    return q


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
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

