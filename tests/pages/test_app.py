"""Every page of the app runs under AppTest, on an empty database, without an exception."""
import pytest
from streamlit.testing.v1 import AppTest

from core.config import REPO_ROOT


def page_paths() -> list[str]:
    return sorted(f"pages/{p.name}" for p in (REPO_ROOT / "pages").glob("*.py"))


@pytest.fixture()
def empty_db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(tmp_path / "pages.duckdb"))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)


def test_router_lists_pages_and_shows_database(empty_db, tmp_path):
    router = (REPO_ROOT / "app.py").read_text()
    for path in page_paths():  # every page file is routed (auto-discovery never runs)
        assert f'"{path}"' in router
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any(str(tmp_path / "pages.duckdb") in c.value for c in at.sidebar.code)


@pytest.mark.parametrize("path", page_paths())
def test_page_runs_without_exception(empty_db, path):
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    at.switch_page(path).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
