"""Every page of the app runs under AppTest, on an empty database, without an exception."""
import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT
from tests.support.store import migrated


def page_paths() -> list[str]:
    return sorted(f"pages/{p.name}" for p in (REPO_ROOT / "pages").glob("*.py"))


@pytest.fixture()
def empty_db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "pages.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)


def test_router_lists_pages_and_shows_database(empty_db, tmp_path):
    router = (REPO_ROOT / "app.py").read_text()
    for path in page_paths():  # every page file is routed (auto-discovery never runs)
        assert f'"{path}"' in router
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any(str(tmp_path / "pages.duckdb") in c.value for c in at.sidebar.code)


def test_a_bad_device_label_is_one_line_in_the_sidebar_not_a_page_error(empty_db, monkeypatch):
    monkeypatch.setenv("SLM_DEVICE", "lab,laptop")   # a comma would make it two targets of a campaign
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "SLM\\_DEVICE" in errors[0] and "comma" in errors[0]   # Markdown-escaped


@pytest.mark.parametrize("path", page_paths())
def test_page_runs_without_exception(empty_db, path):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    at.switch_page(path).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.models
def test_sidebar_lists_loaded_models_and_unloads_them(empty_db):
    import time

    import psutil

    from core.catalog.starter import starter_gguf_path
    from core.engines import pool
    gguf = starter_gguf_path()
    if not gguf.is_file():
        pytest.skip("starter GGUF not built")
    shared = pool.shared_pool()
    shared.load({"id": "smollm2-135m-instruct-gguf", "backend": "llamacpp", "path": str(gguf)})
    try:
        at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
        assert not at.exception, at.exception
        assert at.sidebar.number_input(key="app_idle_unload_min").value == 10      # default idle unload
        line = next(t.value for t in at.sidebar.text if "smollm2-135m-instruct-gguf" in t.value)
        pid = int(line.split("pid ")[1].split()[0])
        assert psutil.pid_exists(pid) and " MB" in line
        assert any(b.key.startswith("app_unload_") for b in at.sidebar.button)
        # (AppTest drops the sidebar of st.navigation apps after the first run, so the button's action is
        # checked through the same call it makes)
        (row,) = [r for r in pool.loaded_everywhere() if r["id"] == "smollm2-135m-instruct-gguf"]
        pool.unload(row)
        assert not [r for r in pool.loaded_everywhere() if r["id"] == "smollm2-135m-instruct-gguf"]
        deadline = time.monotonic() + 15
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        shared.close_all()
