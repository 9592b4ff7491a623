"""Across pages under AppTest: the trust gate set on the Quality page reaches the Decision page (runs and
devices), and a run whose process died reads "interrupted" on the Benchmark, Quality and Decision pages.
Real DuckDB files, real stored human and judge scores (tests/support/gated_store.py)."""
import subprocess
import sys

import psutil
import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from core.store import connect
from tests.support import gated_store

APP = str(REPO_ROOT / "app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("gatepages") / "gate.duckdb"
    gated_store.build_file(path)
    return path


@pytest.fixture()
def db(store, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(store))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    return store


def _app(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _set_gate_on_quality_page(min_kappa: float, min_outputs: int) -> None:
    at = _app("pages/quality.py")
    at.selectbox(key="quality_run").set_value("rc").run()
    at.number_input(key="quality_gate_k").set_value(min_kappa).run()
    at.number_input(key="quality_gate_n").set_value(min_outputs).run()
    assert not at.exception, [e.value for e in at.exception]


def _quality_cells(at: AppTest) -> dict[str, str]:
    matrix = next(d.value for d in at.dataframe if "why not ranked" in d.value.columns)
    col = next(c for c in matrix.columns if c.startswith("Quality"))
    return {name.split(" ·")[0]: cell for name, cell in zip(matrix["candidate"], matrix[col])}


@pytest.mark.parametrize("fleet", [False, True], ids=["runs", "devices"])
def test_gate_set_on_the_quality_page_reaches_the_decision_page(db, fleet):
    for min_kappa, unverified in ((0.9, True), (0.5, False), (0.9, True)):
        _set_gate_on_quality_page(min_kappa, gated_store.CO_SCORED)
        at = _app("pages/decision.py")
        if fleet:
            at.multiselect(key="decision_devices").set_value(["dev-a", "dev-b"]).run()
        else:
            at.multiselect(key="decision_runs").set_value(["rc"]).run()
        at.selectbox(key="decision_preset").set_value("quality first").run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(f"kappa >= {min_kappa:g}" in c.value.replace("\\", "") for c in at.caption), [c.value for c in at.caption]
        cells = _quality_cells(at)
        assert cells["m-b"].endswith("(unverified)") is unverified, cells     # the judge's score only
        assert "unverified" not in cells["m-a"]                               # people's scores


def _dead_pid() -> tuple[int, float]:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    return proc.pid, started


def test_a_dead_run_reads_interrupted_on_every_page(db):
    import socket

    import streamlit as st

    from core.store import bench as bench_store

    pid, started = _dead_pid()

    def dies():
        """'rb' left running by a process that is gone, before each page (each settles it itself)."""
        with connect() as con:
            con.execute("UPDATE runs SET status = 'running', runner_pid = ?, runner_host = ?, runner_started = ? "
                        "WHERE run_id = 'rb'", [pid, socket.gethostname(), started])
            con.execute("UPDATE run_models SET status = 'running' WHERE run_id = 'rb'")
        st.cache_data.clear()   # the pages cache their run lists for seconds; read the store as a new visit does
        assert {r["run_id"]: r["status"] for r in bench_store.list_runs()}["rb"] == "running"   # reads never write

    try:
        dies()
        at = _app("pages/benchmark.py")
        picker = at.selectbox(key="bench_result_run")
        assert picker.format_func("rb").split(" · ")[1] == "interrupted"
        dies()
        at = _app("pages/quality.py")
        assert at.selectbox(key="quality_run").format_func("rb").endswith("· interrupted")
        dies()
        at = _app("pages/decision.py")
        assert at.multiselect(key="decision_runs").format_func("rb").endswith(", interrupted)")
    finally:
        with connect() as con:
            con.execute("UPDATE runs SET status = 'completed' WHERE run_id = 'rb'")
            con.execute("UPDATE run_models SET status = 'ok' WHERE run_id = 'rb'")
