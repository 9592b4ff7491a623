"""The Overview page (home) and first impressions: every page has a URL, forms keep their values on error."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from tests.decision import fixture as fx
from core.config import REPO_ROOT
from tests.support.store import migrated

APP = str(REPO_ROOT / "app.py")


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "o.duckdb")))
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    return tmp_path


def test_every_page_has_an_explicit_url_and_overview_is_home():
    router = (REPO_ROOT / "app.py").read_text()
    rows = re.findall(r'\("(pages/\w+\.py)", "[^"]+", "[^"]+", "(\w+)"\)', router)
    urls = dict(rows)
    assert urls["pages/overview.py"] == "overview" and 'HOME = "pages/overview.py"' in router
    for page in ("models", "benchmark", "quality", "scoring", "decision", "present"):
        assert urls[f"pages/{page}.py"] == page


def test_overview_on_empty_database_says_what_to_do(db):
    at = AppTest.from_file(APP, default_timeout=60).run()  # the default page is the overview
    assert not at.exception, at.exception
    assert at.title[0].value == "SLM Selector"
    text = " ".join(t.value for t in at.text)
    assert "no run yet" in text and "no saved decision" in text and "judge calibration" in text
    assert any(s.value == "Next step" for s in at.subheader)


def test_overview_counts_a_run(db):
    fx.add_run("run-a", fx.STANDARD, seed=1)
    at = AppTest.from_file(APP, default_timeout=60).run()
    text = " ".join(t.value for t in at.text)
    assert "1 run(s), 1 completed" in text and "4 model(s)" in text
    assert "0 output(s) scored by hand" in text


def test_endpoint_form_keeps_its_values_on_error(db):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/models.py").run()
    at.text_input(key="models_ep_name").set_value("team server")
    at.text_input(key="models_ep_url").set_value("ftp://not-http")
    next(b for b in at.button if b.label == "Add endpoint").click().run()
    assert at.error, "a bad URL must be refused"
    assert at.text_input(key="models_ep_name").value == "team server"
    assert at.text_input(key="models_ep_url").value == "ftp://not-http"
