"""The Campaigns section of the Benchmark page: the campaign's devices with their state, the missing target."""
import json

from streamlit.testing.v1 import AppTest

from core.cli import main
from core.config import REPO_ROOT
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated


def test_campaigns_section_shows_each_device_and_the_missing_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "page.duckdb")))
    monkeypatch.setenv("SLM_DEVICE", "lab-pc")
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["Say hi"]))
    with OpenAITestServer(models=["tiny"], n=4) as server:
        assert main(["campaign", "create", "fleet <b>", "--models", "tiny", "--prompts", str(prompts),
                     "--endpoint", server.base_url, "--rounds", "1", "--max-tokens", "8",
                     "--devices", "lab-pc,far-laptop"]) == 0
        assert main(["campaign", "run", "fleet <b>"]) == 0
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
    at = at.switch_page("pages/benchmark.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert "Campaigns" in [s.value for s in at.subheader]
    assert at.selectbox(key="bench_campaign").value == "fleet <b> v1"
    table = at.dataframe[-1].value
    assert list(zip(table["device"], table["state"], table["requests"])) == [("lab-pc", "done", 1),
                                                                              ("far-laptop", "not started", 0)]
    assert any("far-laptop" in w.value for w in at.warning)
