"""A campaign on the team store: two processes labelled as two devices run one campaign at once into a real
PostgreSQL-backed DuckLake store; `campaign show` reports both done and the third target missing, and so does
campaign_decision_inputs. Real PostgreSQL 15, real processes, real HTTP model server on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.cli import main
from core.store import campaigns, db
from tests.store.test_team_store import _fresh_connections, pg  # noqa: F401  (the same fixtures: a real PostgreSQL)
from tests.support.openai_server import OpenAITestServer

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ["Say hi", "Name three colours"]
ROUNDS = 2


def _env(store: str, device: str, data: Path) -> dict:
    return {**os.environ, "SLM_DB": store, "SLM_DEVICE": device, "SLM_DATA_PATH": str(data),
            "PYTHONPATH": str(REPO)}


def test_two_devices_run_one_campaign_at_once_into_postgres(tmp_path, pg, monkeypatch, capsys):
    store = f"ducklake:postgres:{pg.conninfo('team_campaign')}"
    data = tmp_path / "files"
    monkeypatch.setenv("SLM_DB", store)
    monkeypatch.setenv("SLM_DATA_PATH", str(data))
    monkeypatch.setenv("SLM_CACHE", str(tmp_path / "cache"))      # one machine: the endpoint accepted at create
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    with OpenAITestServer(models=["tiny", "big"], ttft=0.01, tok=0.001, n=4) as server:
        assert main(["campaign", "create", "fleet", "--models", "tiny,big", "--prompts", str(prompts),
                     "--endpoint", server.base_url, "--rounds", str(ROUNDS), "--max-tokens", "8",
                     "--devices", "laptop-8gb,workstation,laptop-16gb"]) == 0
        db.close_lakes()
        procs = [(dev, subprocess.Popen([sys.executable, "-m", "core", "campaign", "run", "fleet"], cwd=REPO,
                                        env=_env(store, dev, data), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True))
                 for dev in ("laptop-8gb", "workstation")]
        for dev, p in procs:                          # both write into the one store at the same time
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, f"{dev}: {err[-2000:]}"
        sent = len(server.log)
        assert sent == 2 * 2 * (1 + ROUNDS * len(PROMPTS))        # devices x models x (warm-up + measured)
        # running it again on one device changes nothing
        again = subprocess.run([sys.executable, "-m", "core", "campaign", "run", "fleet"], cwd=REPO,
                               env=_env(store, "workstation", data), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "already done" in again.stdout, again.stderr[-2000:]
        assert len(server.log) == sent
    capsys.readouterr()
    out = tmp_path / "show.json"
    assert main(["campaign", "show", "fleet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "missing: laptop-16gb" in text
    status = json.loads(out.read_text())
    by = {d["device"]: d for d in status["devices"]}
    planned = 2 * ROUNDS * len(PROMPTS)
    assert {d: (v["state"], v["requests"], v["planned"]) for d, v in by.items()} == {
        "laptop-8gb": ("done", planned, planned), "workstation": ("done", planned, planned),
        "laptop-16gb": ("not started", 0, planned)}
    runs, missing = campaigns.campaign_decision_inputs("fleet")
    assert missing == ["laptop-16gb"]
    assert runs == {"laptop-8gb": [by["laptop-8gb"]["run_id"]], "workstation": [by["workstation"]["run_id"]]}
    assert len(set(sum(runs.values(), []))) == 2
    from core.store import devices
    assert devices.run_devices(sum(runs.values(), [])) == {r[0]: d for d, r in runs.items()}
    # decide --campaign: ranks across both devices; the third target is named missing and fails what it decides
    doc_path = tmp_path / "decision.json"
    capsys.readouterr()
    assert main(["decide", "--campaign", "fleet", "--weights", "latency=1", "--constraint", "e2e_p95_ms<=60000",
                 "--json", str(doc_path)]) == 0
    doc = json.loads(doc_path.read_text())
    assert doc["devices"] == ["laptop-8gb", "workstation", "laptop-16gb"]
    assert any("laptop-16gb" in w and "not finished" in w for w in doc["warnings"]), doc["warnings"]
    for c in doc["candidates"]:
        assert set(c["devices"]) == {"laptop-8gb", "workstation", "laptop-16gb"}
        assert any("laptop-16gb" in f for f in c["failed_constraints"]), c["failed_constraints"]
    # without the missing device's constraint the two done devices rank the candidates
    assert main(["decide", "--runs", ",".join(sum(runs.values(), [])), "--devices", "laptop-8gb,workstation",
                 "--weights", "latency=1", "--json", str(doc_path)]) == 0
    assert json.loads(doc_path.read_text())["winner"]
