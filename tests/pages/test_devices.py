"""Devices in the app: the sidebar's device label (saved on this machine), the device filters of the
Benchmark and Models pages, on a DuckLake team store."""
import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from core.store import db as store_db


@pytest.fixture()
def team(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", f"ducklake:sqlite:{tmp_path / 'team.sqlite'}")
    monkeypatch.setenv("SLM_DATA_PATH", str(tmp_path / "files"))
    monkeypatch.setenv("SLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SLM_DEVICE", raising=False)
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    store_db.close_lakes()
    from core.store import bench
    for run_id, device, model in (("run-a", "laptop-8gb", "alpha"), ("run-b", "workstation", "beta")):
        bench.create_run(run_id, prompt_set="p", prompt_set_hash="h", settings={}, environment={"device": device},
                         prompts=[{"id": "p1", "text": "hello"}])
        bench.save_level({"run_id": run_id, "model": model, "backend": "openai", "concurrency": 1, "status": "ok",
                          "label": model}, [])
        bench.finish_run(run_id, "completed")
    yield tmp_path
    store_db.close_lakes()


def test_sidebar_device_label_is_saved_on_this_machine(team, monkeypatch):
    from core.config import device_file, device_label, set_device_label
    import socket
    assert device_label() == socket.gethostname()                  # default: the hostname
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.sidebar.text_input(key="app_device").value == device_label()
    # (AppTest does not re-render the sidebar of an st.navigation app on a rerun: the field's save is
    # the function it calls)
    set_device_label("  dev   mac ")
    assert device_file().read_text().strip() == "dev mac" and device_label() == "dev mac"
    assert str(device_file()).startswith(str(team))          # local, never in the shared store
    monkeypatch.setenv("SLM_DEVICE", "ci-runner")
    assert device_label() == "ci-runner"                       # SLM_DEVICE overrides it


def test_benchmark_page_filters_runs_by_device(team):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("pages/benchmark.py").run()
    assert not at.exception, [e.message for e in at.exception]
    f = at.multiselect(key="bench_f_devices")
    assert f.options == ["laptop-8gb", "workstation"]
    past = [d.value for d in at.dataframe if "device" in d.value.columns][-1]
    assert sorted(past["device"]) == ["laptop-8gb", "workstation"]
    f.select("workstation").run()
    assert not at.exception, [e.message for e in at.exception]
    past = [d.value for d in at.dataframe if "device" in d.value.columns][-1]
    assert list(past["run_id"]) == ["run-b"]


def test_models_page_filters_by_device(team):
    from core.catalog import endpoints
    from tests.support.openai_server import OpenAITestServer
    import streamlit as st
    with OpenAITestServer(models=["alpha", "beta", "gamma"]) as server:
        endpoints.add("testserver", server.base_url)
        st.cache_data.clear()      # the model list cached by an earlier test's app run
        at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
        at = at.switch_page("pages/models.py").run()
        assert not at.exception, [e.message for e in at.exception]
        f = at.multiselect(key="models_f_device")
        assert f.options == ["laptop-8gb", "workstation"]
        listed = at.dataframe[0].value
        assert {"alpha", "beta", "gamma"} <= set(listed["id"])
        f.select("laptop-8gb").run()
        assert not at.exception, [e.message for e in at.exception]
        assert list(at.dataframe[0].value["id"]) == ["alpha"]      # benchmarked on that device only
