"""The Benchmark page's confirm for a plan's endpoints: an imported plan's endpoint is named as not accepted on this
machine, `campaign run` sends it nothing, and after the page's confirm it is asked, without a key. A real DuckDB
file, a real HTTP listener on 127.0.0.1 that records what reaches it, the real app in AppTest."""
import json

from streamlit.testing.v1 import AppTest

from core.cli import main
from core.config import REPO_ROOT
from tests.cli.test_outside_input import SECRET, write_plan
from tests.support.hostile_server import RecordingServer


def test_the_page_names_an_unaccepted_endpoint_and_its_confirm_accepts_it_without_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(tmp_path / "page.duckdb"))
    monkeypatch.setenv("SLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SLM_DEVICE", "lab-pc")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    monkeypatch.delenv("FOUNDRY_LOCAL_ENDPOINT", raising=False)
    with RecordingServer(models=("m",)) as listener:
        plan = write_plan(tmp_path / "plan.json", listener.base_url, api_key_env="PGPASSWORD")
        assert main(["campaign", "create", "shared", "--from", str(plan)]) == 0
        at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=180).run()
        at = at.switch_page("pages/benchmark.py").run()
        assert not at.exception, [e.message for e in at.exception]
        assert any("not accepted" in w.value and "127.0.0.1" in w.value for w in at.warning)
        assert main(["campaign", "run", "shared"]) == 2 and listener.requests == []
        at.button(key="bench_campaign_accept_shared_1").click().run()
        assert not at.exception, [e.message for e in at.exception]
        assert any("without a key" in s.value for s in at.success)
        assert main(["campaign", "run", "shared"]) == 0
        assert listener.requests and all("authorization" not in r["headers"] for r in listener.requests)
        assert SECRET not in json.dumps(listener.requests)
