"""A run bundle is one run and nothing else (issue 18): the attacks of the issue against a real DuckDB store in a
temporary folder. Each refused bundle leaves the store exactly as it was, and nothing it names is ever contacted
(a real HTTP server on 127.0.0.1 stands where a bundle's endpoint points)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from core.cli import main
from core.store import connect
from core.store.bundle_export import export_run
from core.store.bundles import BUNDLE_TABLES
from tests.support.hostile_server import RecordingServer
from tests.support.quality_run import TEST_RUBRIC, make_run

REPO = Path(__file__).resolve().parents[2]
RUN = "bundle-run"


@pytest.fixture
def stores(tmp_path, monkeypatch):
    """(source store with a scored run and its bundle, target store holding another run)."""
    from core.quality.rubrics import import_rubric
    from core.store import quality as qstore

    src, dst = tmp_path / "src.duckdb", tmp_path / "dst.duckdb"
    monkeypatch.setenv("SLM_DB", str(src))
    ids = make_run(RUN, {"p1": "Notes: launch moves to May."}, {("m1", "p1"): "Launch moves to May.",
                                                                 ("m2", "p1"): "May."})
    rubric = import_rubric(TEST_RUBRIC)
    qstore.save_human_scores([{"run_id": RUN, "request_id": r, "rubric": "notes", "rater": "ann",
                               "scores": {"coverage": 4, "faithfulness": 5}, "comment": "ok"} for r in ids.values()],
                             rubric_version=rubric.version)
    qstore.ensure_template("v-test", "pointwise", "judge this: {output}")
    jr = qstore.create_judge_run(run_id=RUN, rubric="notes", judge_model="j", judge_backend="openai",
                                 judge_endpoint=None, mode="pointwise", template_version="v-test", settings={},
                                 warnings=[])
    qstore.save_judgement(judge_run_id=jr, run_id=RUN, request_id=ids[("m1", "p1")], rubric="notes",
                          template_version="v-test", status="ok", scores={"coverage": 4, "faithfulness": 4},
                          rationale="fine", raw="{}", raw_attempts=["{}"], attempts=1, error=None, messages=[])
    bundle = tmp_path / "run.zip"
    export_run(RUN, bundle)
    monkeypatch.setenv("SLM_DB", str(dst))
    make_run("theirs", {"p1": "other"}, {("x", "p1"): "their output"})
    with connect() as con:
        con.execute("INSERT INTO endpoints (name, base_url, api_key_env) VALUES ('mine', 'http://127.0.0.1:9/v1', NULL)")
        con.execute("INSERT INTO settings (key, value) VALUES ('k', '\"v\"')")
    return bundle, dst


def snapshot(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main'").fetchall()]
        return {t: sorted(map(repr, con.execute(f'SELECT * FROM "{t}"').fetchall())) for t in tables}
    finally:
        con.close()


def rewrite(bundle: Path, out: Path, *, manifest=None, files: dict[str, bytes] | None = None,
            rehash: bool = True, raw_manifest: bytes | None = None) -> Path:
    """A copy of ``bundle`` with a changed manifest (a function of the parsed one) and added/replaced files;
    the sha256 and row counts of replaced files are made consistent (an attacker can do that)."""
    files = files or {}
    with zipfile.ZipFile(bundle) as z:
        m = json.loads(z.read("manifest.json"))
        content = {n: z.read(n) for n in z.namelist() if n != "manifest.json"}
    content.update(files)
    if rehash:
        for name, data in files.items():
            table = name.removesuffix(".parquet")
            if table in m["tables"]:
                m["tables"][table]["sha256"] = hashlib.sha256(data).hexdigest()
    if manifest:
        m = manifest(m) or m
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("manifest.json", raw_manifest if raw_manifest is not None else json.dumps(m))
        for name, data in content.items():
            z.writestr(name, data)
    return out


def parquet(tmp_path: Path, sql: str, name: str) -> tuple[bytes, list, int]:
    """(bytes, columns, rows) of a Parquet file made from ``sql``."""
    path = tmp_path / name
    con = duckdb.connect()
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    cols = [[r[0], r[1]] for r in con.execute(f"DESCRIBE {sql}").fetchall()]
    n = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    con.close()
    return path.read_bytes(), cols, n


def altered(bundle: Path, tmp_path: Path, table: str, replace: str) -> tuple[bytes, list, int]:
    """The bundle's ``table`` Parquet file with columns replaced (``SELECT * REPLACE (...)``)."""
    with zipfile.ZipFile(bundle) as z:
        (tmp_path / f"orig-{table}.parquet").write_bytes(z.read(f"{table}.parquet"))
    return parquet(tmp_path, f"SELECT * REPLACE ({replace}) FROM read_parquet('{tmp_path / f'orig-{table}.parquet'}')",
                   f"new-{table}.parquet")


def refused(bundle: Path, dst: Path, capsys, *words, extra=()) -> str:
    before = snapshot(dst)
    capsys.readouterr()
    assert main(["import-run", str(bundle), "--db", str(dst), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    assert snapshot(dst) == before
    return err


def test_a_clean_bundle_adds_exactly_one_run(stores, capsys):
    bundle, dst = stores
    before = snapshot(dst)
    assert main(["import-run", str(bundle), "--db", str(dst)]) == 0
    after = snapshot(dst)
    changed = {t for t in after if after[t] != before[t]}
    assert changed <= set(BUNDLE_TABLES)
    assert after["endpoints"] == before["endpoints"] and after["settings"] == before["settings"]
    assert after["schema_migrations"] == before["schema_migrations"]
    con = duckdb.connect(str(dst), read_only=True)
    assert {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()} == {RUN, "theirs"}
    assert con.execute("SELECT count(*) FROM requests WHERE run_id = 'theirs'").fetchone()[0] == 5
    # the rubric came with its version, and the scores point at this store's number of it
    assert con.execute("SELECT DISTINCT rubric_version FROM human_scores WHERE run_id = ?", [RUN]).fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM rubric_versions WHERE rubric = 'notes'").fetchone()[0] == 1
    con.close()
    # again: refused (the run is there), unless --replace, which gives the same rows
    refused(bundle, dst, capsys, "already in this store", "--replace")
    assert main(["import-run", str(bundle), "--db", str(dst), "--replace"]) == 0
    assert snapshot(dst) == {**after, "rubrics": snapshot(dst)["rubrics"]}


def test_foreign_tables_are_refused_and_nothing_reaches_their_endpoint(stores, tmp_path, capsys, monkeypatch):
    bundle, dst = stores
    monkeypatch.setenv("POC_SECRET", "s3cret-value-for-the-attacker")
    with RecordingServer() as evil:
        url = evil.base_url.replace("'", "")
        attacks = {
            "endpoints": f"SELECT 'evil' AS name, '{url}' AS base_url, 'POC_SECRET' AS api_key_env, "
                         "now()::TIMESTAMP AS created_at",
            "schema_migrations": "SELECT 999 AS version, '999_x.sql' AS name, now()::TIMESTAMP AS applied_at",
            "settings": "SELECT 'k' AS key, '\"tampered\"'::JSON AS value, now()::TIMESTAMP AS updated_at",
            "decisions": "SELECT 'd' AS name, '[]'::JSON AS run_ids",
        }
        for table, sql in attacks.items():
            data, cols, n = parquet(tmp_path, sql, f"{table}.parquet")

            def add(m, table=table, cols=cols, n=n, data=data):
                m["tables"][table] = {"file": f"{table}.parquet", "rows": n, "columns": cols,
                                      "sha256": hashlib.sha256(data).hexdigest()}
            bad = rewrite(bundle, tmp_path / f"{table}.zip", manifest=add, files={f"{table}.parquet": data})
            refused(bad, dst, capsys, table, "not part of a run bundle")
        # the store still lists only its own endpoint; probing what it has never contacts the attacker's server
        from core.catalog import endpoints
        monkeypatch.setenv("SLM_DB", str(dst))
        assert [e["name"] for e in endpoints.configured()] == ["mine"]
        endpoints.probe_all(timeout=0.5)
        assert evil.requests == []


def test_rows_of_another_run_are_refused(stores, tmp_path, capsys):
    bundle, dst = stores
    with zipfile.ZipFile(bundle) as z:
        m = json.loads(z.read("manifest.json"))
        (tmp_path / "runs.parquet").write_bytes(z.read("runs.parquet"))
        (tmp_path / "requests.parquet").write_bytes(z.read("requests.parquet"))
    # a runs row reusing the target's run id (status 'tampered'), the manifest naming that run
    data, _, _ = parquet(tmp_path, f"SELECT * REPLACE ('theirs' AS run_id, 'tampered' AS status) "
                                   f"FROM read_parquet('{tmp_path / 'runs.parquet'}')", "r2.parquet")
    reuse = rewrite(bundle, tmp_path / "reuse.zip", files={"runs.parquet": data},
                    manifest=lambda m: {**m, "run_id": "theirs"})
    refused(reuse, dst, capsys, "another run")   # the other tables' rows are of bundle-run, not 'theirs'
    # the same, every table consistent: the run exists, refused without --replace
    only_runs = rewrite(bundle, tmp_path / "only.zip", files={"runs.parquet": data},
                        manifest=lambda m: {**m, "run_id": "theirs",
                                            "tables": {"runs": m["tables"]["runs"]}})
    refused(only_runs, dst, capsys, "already in this store")
    # request rows of a new run id that carry the request ids of the target's run: never overwritten
    data, _, _ = parquet(tmp_path, f"SELECT * REPLACE ('theirs-r000' AS request_id) "
                                   f"FROM read_parquet('{tmp_path / 'requests.parquet'}') LIMIT 1", "q.parquet")
    clash = rewrite(bundle, tmp_path / "clash.zip", files={"requests.parquet": data},
                    manifest=lambda m: m["tables"]["requests"].update(rows=1))
    refused(clash, dst, capsys, "another run's rows")
    # one request row of another run inside the bundle
    data, _, _ = parquet(tmp_path, f"SELECT * REPLACE ('theirs' AS run_id) "
                                   f"FROM read_parquet('{tmp_path / 'requests.parquet'}')", "q2.parquet")
    refused(rewrite(bundle, tmp_path / "mixed.zip", files={"requests.parquet": data}), dst, capsys,
            "requests rows belong to another run")


@pytest.mark.parametrize("change, words", [
    (lambda m: m["tables"]["runs"].update(columns=[]), ("runs", "non-empty list")),
    (lambda m: m["tables"]["runs"].update(rows=True), ("rows is True",)),
    (lambda m: m["tables"]["runs"].update(rows="1"), ("rows is 1",)),
    (lambda m: m["tables"]["runs"]["columns"].append(["ghost", "VARCHAR"]), ("missing ghost",)),
    (lambda m: m["tables"]["runs"].update(columns=[c for c in m["tables"]["runs"]["columns"] if c[0] != "note"]),
     ("not listed note",)),
    (lambda m: m["tables"]["runs"].update(columns=[["x", "VARCHAR); DROP TABLE runs; --"]]), ("not a column type",)),
    (lambda m: m["tables"]["runs"].update(rows=10**12), ("SLM_MAX_BUNDLE_ROWS",)),
    (lambda m: m.update(version=True), ("bundle version",)),
    (lambda m: m.update(run_id=["x"]), ("run_id",)),
])
def test_bad_manifests_are_one_line_refusals(stores, tmp_path, capsys, change, words):
    bundle, dst = stores
    refused(rewrite(bundle, tmp_path / "m.zip", manifest=change), dst, capsys, *words)


def test_deeply_nested_manifest(stores, tmp_path, capsys):
    bundle, dst = stores
    deep = b'{"format": "slm-selector-run-bundle", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    refused(rewrite(bundle, tmp_path / "deep.zip", raw_manifest=deep), dst, capsys, "manifest.json", "nested deeper")


def test_a_wrong_rubric_or_template_is_added_as_a_new_version_never_replacing(stores, tmp_path, capsys):
    bundle, dst = stores
    from core.quality.rubrics import import_rubric
    import os
    os.environ["SLM_DB"] = str(dst)
    other = {**TEST_RUBRIC, "description": "the target's own rubric"}
    import_rubric(other)
    from core.store import quality as qstore
    qstore.ensure_template("v-test", "pointwise", "the target's own template text")
    before = snapshot(dst)
    assert main(["import-run", str(bundle), "--db", str(dst)]) == 0
    after = snapshot(dst)
    for t in ("rubrics", "rubric_criteria", "rubric_prompts", "rubric_checks"):
        assert after[t] == before[t]          # the stored rubric's current form is kept
    assert set(before["rubric_versions"]) < set(after["rubric_versions"])
    assert set(before["judge_templates"]) < set(after["judge_templates"])
    con = duckdb.connect(str(dst), read_only=True)
    assert con.execute("SELECT DISTINCT rubric_version FROM human_scores WHERE run_id = ?", [RUN]).fetchall() == [(2,)]
    hashes = dict(con.execute("SELECT version, content_hash FROM rubric_versions WHERE rubric = 'notes'").fetchall())
    assert sorted(hashes) == [1, 2, 3] and hashes[3] == hashes[1] != hashes[2]   # the store's own is the newest
    tv = con.execute("SELECT DISTINCT template_version FROM judge_runs WHERE run_id = ?", [RUN]).fetchone()[0]
    assert tv.startswith("v-test+")
    assert con.execute("SELECT text FROM judge_templates WHERE version = 'v-test'").fetchone()[0] == \
        "the target's own template text"
    con.close()
    stored = qstore.load_rubric("notes")
    assert stored["description"] == "the target's own rubric" and stored["_version"] == 3


def test_rubrics_the_run_does_not_use_are_refused(stores, tmp_path, capsys):
    bundle, dst = stores
    data, _, _ = altered(bundle, tmp_path, "rubrics", "'unrelated' AS name")
    refused(rewrite(bundle, tmp_path / "r.zip", files={"rubrics.parquet": data}), dst, capsys,
            "rubrics the run does not use")


BOMB = r"""
import resource, sys, time, zipfile
from pathlib import Path
bomb = Path(sys.argv[1])
with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("manifest.json", "{}")
    with z.open("runs.parquet", "w", force_zip64=True) as f:
        block = bytes(1 << 20)
        for _ in range(600):
            f.write(block)
print("size", bomb.stat().st_size)
import os
os.environ["SLM_DB"] = sys.argv[2]
from core.errors import UserError
from core.store.bundles import import_run
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    import_run(bomb)
except UserError as exc:
    print("refused", exc.one_line())
print("seconds", time.perf_counter() - t)
print("rss_delta_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_zip_bomb_is_refused_from_the_directory_with_bounded_memory(stores, tmp_path):
    bundle, dst = stores
    before = snapshot(dst)
    p = subprocess.run([sys.executable, "-c", BOMB, str(tmp_path / "bomb.zip"), str(dst)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = dict(line.split(" ", 1) for line in p.stdout.strip().splitlines())
    print(p.stdout)    # the figures for the report: packed size, time, peak RSS delta
    assert int(out["size"]) < 5 * 2**20
    assert "zip bomb" in out["refused"]
    assert float(out["seconds"]) < 5          # refused from the zip's directory: nothing is unpacked
    assert int(out["rss_delta_kb"]) < 100 * 1024
    assert snapshot(dst) == before


def test_a_run_id_column_of_another_type_is_a_one_line_refusal(stores, tmp_path, capsys):
    bundle, dst = stores
    data, cols, _ = altered(bundle, tmp_path, "runs", "[1, 2] AS run_id")

    def change(m):
        m["tables"]["runs"]["columns"] = cols
    refused(rewrite(bundle, tmp_path / "t.zip", files={"runs.parquet": data}, manifest=change), dst, capsys,
            "refused")


def test_garbage_instead_of_parquet_and_not_a_zip(stores, tmp_path, capsys):
    bundle, dst = stores
    refused(rewrite(bundle, tmp_path / "g.zip", files={"runs.parquet": b"not parquet at all"}), dst, capsys,
            "runs.parquet", "not readable Parquet")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 this is no zip")
    refused(junk, dst, capsys, "not a readable zip")
