"""The Decision page decides over a campaign: its devices' campaign runs, the target device that has not run it
named as missing. A real DuckDB file, a real campaign run against a real HTTP model server on 127.0.0.1."""
import json

from streamlit.testing.v1 import AppTest

from core.cli import main
from core.config import REPO_ROOT
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated


def test_decision_page_over_a_campaign_names_the_missing_device(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "store.duckdb")))
    monkeypatch.setenv("SLM_DEVICE", "dev-a")
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(["Say hi", "Name three colours"]))
    with OpenAITestServer(models=["tiny", "small"], ttft=0.001, tok=0.0005, n=4) as server:
        assert main(["campaign", "create", "pilot <b>x</b>", "--models", "tiny,small", "--prompts", str(prompts),
                     "--endpoint", server.base_url, "--rounds", "2", "--max-tokens", "8",
                     "--devices", "dev-a,dev-b"]) == 0
        assert main(["campaign", "run", "pilot <b>x</b>"]) == 0
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/decision.py")
    at.run()
    box = at.selectbox(key="decision_campaign")
    assert any("pilot" in o for o in box.options), box.options
    box.set_value("pilot <b>x</b>").run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = [w.value for w in at.warning]
    assert any("dev-b" in w and "not finished" in w for w in warnings), warnings
