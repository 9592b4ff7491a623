"""The Decision page's fleet decision under streamlit.testing: runs recorded on two devices in a real DuckDB file,
target devices chosen on the page, the per-device breakdown, a constraint that fails on one device only."""
import copy

import pytest
from streamlit.testing.v1 import AppTest

from tests.decision import fixture as fx
from core.config import REPO_ROOT
from core.decision import record
from core.store import connect
from tests.support.store import migrated

APP = str(REPO_ROOT / "app.py")


def _on_device(run_id: str, device: str) -> None:
    with connect() as con:
        con.execute("UPDATE runs SET device = ? WHERE run_id = ?", [device, run_id])


@pytest.fixture()
def two_devices(tmp_path, monkeypatch):
    """The standard models on a workstation, and on a weaker laptop where fast-small needs 2500 MB and is slower."""
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "fleet.duckdb")))
    fx.add_run("run-ws", fx.STANDARD, seed=1, created_at="2025-01-01 10:00:00")
    _on_device("run-ws", "workstation")
    laptop = copy.deepcopy(fx.STANDARD)
    laptop[0].update(peak_rss_mb=2500.0, e2e=1600.0)
    fx.add_run("run-lap", laptop, seed=2, created_at="2025-01-01 11:00:00")
    _on_device("run-lap", "laptop-8gb")
    import streamlit as st
    st.cache_data.clear()
    return tmp_path


def _page():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/decision.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _frame(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_fleet_decision_on_the_page(two_devices):
    at = _page()
    sel = at.multiselect(key="decision_devices")
    assert set(sel.options) == {"laptop-8gb", "workstation"} and sel.value == []
    # no device chosen: the ordinary decision over the chosen runs, no breakdown
    assert at.multiselect(key="decision_runs")
    assert not any("device" in d.value.columns for d in at.dataframe)

    sel.set_value(["laptop-8gb", "workstation"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="decision_agg_latency").value == "worst"        # worst device by default
    per = _frame(at, "device")
    fast = per[per["candidate"] == "fast-small · Foundry Local"].set_index("device")
    assert set(fast.index) == {"laptop-8gb", "workstation"}
    assert fast.loc["laptop-8gb", "run"] == "run-lap" and fast.loc["workstation", "run"] == "run-ws"
    # the slower laptop decides fast-small's latency and memory (worst device)
    assert "latency (worst)" in fast.loc["laptop-8gb", "decides"]
    assert "memory (worst)" in fast.loc["laptop-8gb", "decides"]
    assert "latency" not in fast.loc["workstation", "decides"]
    matrix = _frame(at, "why not ranked")
    row = matrix[matrix["candidate"] == "fast-small · Foundry Local"].iloc[0]
    assert row["Peak memory (MB)"] == "2,500"

    # a memory cap that only the laptop breaks: fast-small fails, and the laptop is named
    at.number_input(key="decision_max_mem").set_value(2000).run()
    assert not at.exception, [e.value for e in at.exception]
    matrix = _frame(at, "why not ranked")
    row = matrix[matrix["candidate"] == "fast-small · Foundry Local"].iloc[0]
    assert not row["passes"] and row["rank"] == "not ranked" and "on device laptop-8gb" in row["why not ranked"]
    per = _frame(at, "device")
    fast = per[per["candidate"] == "fast-small · Foundry Local"].set_index("device")
    assert "peak_rss_mb<=2000: FAILS" in fast.loc["laptop-8gb", "decides constraints"]
    assert "violates" in fast.loc["laptop-8gb", "fails here"] and fast.loc["workstation", "fails here"] == ""

    # mean aggregation: the latency is no longer decided by one device
    at.selectbox(key="decision_agg_latency").set_value("mean").run()
    per = _frame(at, "device")
    fast = per[per["candidate"] == "fast-small · Foundry Local"].set_index("device")
    assert "latency" not in fast.loc["laptop-8gb", "decides"]

    # save: the record names both devices' runs and keeps the breakdown; exports come from it
    at.text_input(key="decision_name").set_value("fleet choice")
    next(b for b in at.button if b.label == "Save decision").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Saved 'fleet choice'" in s.value for s in at.success)
    rec = record.load("fleet choice")
    assert rec["run_ids"] == ["run-lap", "run-ws"]
    assert rec["result"]["devices"] == ["laptop-8gb", "workstation"]
    assert len(at.get("download_button")) == 4
