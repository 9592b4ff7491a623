"""Fleet campaigns on a local store: create / list / show, a changed plan refused (unless --new-version), `campaign
run` skipping what a device cannot run and changing nothing the second time, a SIGKILLed run resumed with the same
totals as an uninterrupted one, and a run bundle from an offline device counted by the team's store. Real DuckDB
files, real HTTP model server on 127.0.0.1, real processes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.cli import main
from core.store import campaigns as store
from core.store.db import _migrated
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated

REPO = Path(__file__).resolve().parents[2]
FAST = "tiny"
SLOW = "slowish;ttft=0.15;tok=0.01;n=4"     # about 0.2 s a request
PROMPTS = ["Say hi", "Name three colours"]


@pytest.fixture(scope="module")
def server():
    with OpenAITestServer(models=[FAST, SLOW], ttft=0.001, tok=0.0005, n=4) as s:
        yield s


@pytest.fixture()
def env(tmp_path, monkeypatch):
    for name in ("BENCH_MODELS", "BENCH_ROUNDS", "BENCH_STREAM", "FOUNDRY_LOCAL_ENDPOINT", "SLM_DATA_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "store.duckdb")))
    monkeypatch.setenv("SLM_CACHE", str(tmp_path / "cache"))      # this machine's accepted endpoints
    monkeypatch.setenv("SLM_DEVICE", "dev-a")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    return {"tmp": tmp_path, "prompts": prompts, "db": tmp_path / "store.duckdb"}


def create_args(name, env, server, models, *extra):
    return ["campaign", "create", name, "--models", ",".join(models), "--prompts", str(env["prompts"]),
            "--endpoint", server.base_url, "--rounds", "2", "--max-tokens", "8", *extra]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_create_list_show_and_a_changed_plan_is_refused(server, env, capsys):
    args = create_args("fleet", env, server, [FAST], "--devices", "dev-a,dev-b")
    assert main(args + ["--json", str(env["tmp"] / "c.json")]) == 0
    made = json.loads((env["tmp"] / "c.json").read_text())
    assert made["version"] == 1 and made["created"] and made["plan"]["devices"] == ["dev-a", "dev-b"]
    assert made["plan"]["settings"]["rounds"] == 2 and made["plan"]["models"][0]["engine"] == "openai"
    assert main(args) == 0                                           # the same plan: nothing changes
    assert "unchanged" in capsys.readouterr().out
    changed = create_args("fleet", env, server, [FAST], "--devices", "dev-a,dev-b", "--concurrency", "1,2")
    assert main(changed) == 2
    line = one_error_line(capsys)
    assert "fleet v1" in line and "another plan" in line and "--new-version" in line
    assert [v["version"] for v in store.list_campaigns()] == [1]
    # a device ran v1: still refused, and the message says so
    assert main(["campaign", "run", "fleet"]) == 0
    capsys.readouterr()
    assert main(changed) == 2
    line = one_error_line(capsys)
    assert "1 device(s) ran it" in line and "--new-version" in line
    assert main(changed + ["--new-version"]) == 0
    assert "fleet v2 created" in capsys.readouterr().out
    assert main(["campaign", "list", "--json", str(env["tmp"] / "l.json")]) == 0
    listed = json.loads((env["tmp"] / "l.json").read_text())
    assert [(r["display"], r["devices_ran"]) for r in listed] == [("fleet v2", 0), ("fleet v1", 1)]
    # show: the latest version unless --version; dev-b is a target that has not run
    assert main(["campaign", "show", "fleet", "--json", str(env["tmp"] / "s.json")]) == 0
    s2 = json.loads((env["tmp"] / "s.json").read_text())
    assert s2["display"] == "fleet v2" and [d["state"] for d in s2["devices"]] == ["not started", "not started"]
    assert main(["campaign", "show", "fleet", "--version", "1", "--json", str(env["tmp"] / "s1.json")]) == 0
    s1 = json.loads((env["tmp"] / "s1.json").read_text())
    assert {d["device"]: (d["state"], d["requests"], d["planned"]) for d in s1["devices"]} == {
        "dev-a": ("done", 2 * len(PROMPTS), 2 * len(PROMPTS)), "dev-b": ("not started", 0, 2 * len(PROMPTS))}
    assert s1["missing"] == ["dev-b"]
    assert store.campaign_decision_inputs("fleet", 1) == ({"dev-a": [s1["devices"][0]["run_id"]]}, ["dev-b"])
    capsys.readouterr()
    assert main(["campaign", "show", "nope"]) == 2
    assert "unknown campaign" in one_error_line(capsys)


def test_run_skips_what_it_cannot_run_and_twice_changes_nothing(server, env, capsys):
    config = env["tmp"] / "models.json"
    # FAST is served but said to need 1 PB (no device's free memory); "absent-model" is not served at all
    config.write_text(json.dumps({FAST: {"size_mb": 10 ** 9}}))
    assert main(create_args("skips", env, server, [SLOW, FAST, "absent-model"], "--config", str(config),
                            "--rounds", "1")) == 0
    before = len(server.log)
    out = env["tmp"] / "run.json"
    assert main(["campaign", "run", "skips", "--json", str(out)]) == 0
    sent = len(server.log) - before
    assert sent == 1 + len(PROMPTS)                                   # the slow model only: warm-up + prompts
    result = json.loads(out.read_text())
    assert [r["model"] for r in result["results"]] == [SLOW]
    status = store.campaign_status("skips")
    (dev,) = status["devices"]
    assert dev["device"] == "dev-a" and dev["state"] == "done" and dev["requests"] == dev["planned"] == len(PROMPTS)
    reasons = {s["model"]: s["reason"] for s in dev["skipped"]}
    assert "does not fit in memory" in reasons[FAST] and "absent-model" in reasons["absent-model"]
    assert "cannot run here" in reasons["absent-model"]
    # twice: the done run is found, nothing is sent or stored
    from core.store import bench as db
    runs = len(db.list_runs())
    capsys.readouterr()
    assert main(["campaign", "run", "skips"]) == 0
    assert "already done" in capsys.readouterr().out
    assert len(server.log) - before == sent and len(db.list_runs()) == runs
    assert store.campaign_status("skips")["devices"] == status["devices"]
    # a device that is not a target is refused with one line
    assert main(create_args("only-b", env, server, [FAST], "--devices", "dev-b")) == 0
    capsys.readouterr()
    assert main(["campaign", "run", "only-b"]) == 2
    assert "not a target" in one_error_line(capsys)


def totals(results):
    return sorted((r["model"], r["concurrency"], r["requests_ok"], r["requests_failed"],
                   r["completion_tokens"]["mean"] * r["requests_ok"]) for r in results)


def test_a_killed_campaign_run_resumes_with_the_same_totals(server, env, capsys):
    rounds = 6
    assert main(create_args("kill", env, server, [SLOW], "--rounds", str(rounds), "--concurrency", "1,2")) == 0
    before = len(server.log)
    proc = subprocess.Popen([sys.executable, "-m", "core", "campaign", "run", "kill"], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    answered = 0
    while time.monotonic() < deadline and answered < 4:
        time.sleep(0.02)
        answered = len([e for e in server.log[before:] if e.last_write])
    assert answered >= 4, proc.stderr.read() if proc.poll() is not None else "no request answered"
    (live,) = store.campaign_status("kill")["devices"]          # another process reads it mid-run
    assert live["state"] == "running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _migrated.clear()
    assert store.campaign_status("kill")["devices"][0]["state"] == "running"   # a read writes nothing
    shown = env["tmp"] / "show.json"       # a command that reads runs: its router settles the dead one first
    assert main(["campaign", "show", "kill", "--json", str(shown)]) == 0
    (dev,) = json.loads(shown.read_text())["devices"]
    assert dev["state"] == "interrupted" and 0 < dev["requests"] < dev["planned"]
    resumed = env["tmp"] / "resumed.json"
    capsys.readouterr()
    assert main(["campaign", "run", "kill", "--json", str(resumed)]) == 0
    assert "resuming run " + dev["run_id"] in capsys.readouterr().err
    res = json.loads(resumed.read_text())
    assert res["run_id"] == dev["run_id"]
    (done,) = store.campaign_status("kill")["devices"]
    assert done["state"] == "done" and done["requests"] == done["planned"] == rounds * len(PROMPTS) * 2
    # an uninterrupted run of the same campaign on a fresh store: the same totals
    fresh_db = env["tmp"] / "fresh.duckdb"
    assert main(create_args("kill", env, server, [SLOW], "--rounds", str(rounds), "--concurrency", "1,2",
                            "--db", str(fresh_db))) == 0
    fresh = env["tmp"] / "fresh.json"
    assert main(["campaign", "run", "kill", "--db", str(fresh_db), "--json", str(fresh)]) == 0
    assert totals(res["results"]) == totals(json.loads(fresh.read_text())["results"])


def test_an_offline_devices_bundle_counts_in_the_team_store(server, env, capsys):
    offline, team = env["tmp"] / "offline.duckdb", env["tmp"] / "team.duckdb"
    targets = ["--devices", "air-gapped,dev-a"]
    assert main(create_args("bundled", env, server, [FAST], *targets, "--db", str(team), "--json",
                            str(env["tmp"] / "team.json"))) == 0
    plan = env["tmp"] / "plan.json"                 # the plan travels to the offline device as a file
    assert main(["campaign", "export", "bundled", "--out", str(plan), "--db", str(team)]) == 0
    tampered = env["tmp"] / "tampered.json"
    data = json.loads(plan.read_text())
    data["prompts"][0]["text"] = "Say something else"
    tampered.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["campaign", "create", "bundled", "--from", str(tampered), "--db", str(offline)]) == 2
    assert "prompt_set_hash" in one_error_line(capsys)
    assert main(["campaign", "create", "bundled", "--from", str(plan), "--db", str(offline), "--json",
                 str(env["tmp"] / "made.json")]) == 0
    made = json.loads((env["tmp"] / "made.json").read_text())
    assert made["created"] and made["plan_sha256"] == json.loads((env["tmp"] / "team.json").read_text())["plan_sha256"]
    os.environ["SLM_DEVICE"] = "air-gapped"
    assert main(["campaign", "run", "bundled", "--db", str(offline), "--json", str(env["tmp"] / "r.json")]) == 0
    run_id = json.loads((env["tmp"] / "r.json").read_text())["run_id"]
    bundle = env["tmp"] / "run.zip"
    assert main(["export-run", run_id, "--out", str(bundle), "--db", str(offline)]) == 0
    os.environ["SLM_DB"] = str(team)
    before = {d["device"]: d["state"] for d in store.campaign_status("bundled")["devices"]}
    assert before == {"air-gapped": "not started", "dev-a": "not started"}
    assert main(["import-run", str(bundle), "--db", str(team)]) == 0
    status = store.campaign_status("bundled")
    by = {d["device"]: d for d in status["devices"]}
    assert by["air-gapped"]["state"] == "done" and by["air-gapped"]["run_id"] == run_id
    assert by["air-gapped"]["requests"] == by["air-gapped"]["planned"] == 2 * len(PROMPTS)
    assert status["missing"] == ["dev-a"]
    assert store.campaign_decision_inputs("bundled") == ({"air-gapped": [run_id]}, ["dev-a"])


def test_lengths_and_order_are_stored_and_bad_input_is_one_line(server, env, capsys):
    from dataclasses import fields

    from core.bench.campaign import plan_settings
    from core.bench.run.inputs import Settings
    out = env["tmp"] / "c.json"
    assert main(create_args("sweep", env, server, [FAST], "--lengths", "64,16", "--order", "blocked",
                            "--json", str(out))) == 0
    plan = json.loads(out.read_text())["plan"]
    assert plan["settings"]["lengths"] == [16, 64] and plan["settings"]["order"] == "blocked"
    settings, ignored = plan_settings(store.get_campaign("sweep")["plan"])
    known = {f.name for f in fields(Settings)}
    assert ignored == [k for k in ("lengths", "order") if k not in known]      # applied once Settings has them
    assert all(getattr(settings, k) == plan["settings"][k] for k in ("lengths", "order") if k in known)
    if ignored:
        assert "not apply them yet" in capsys.readouterr().err
    # another length list is another plan
    capsys.readouterr()
    assert main(create_args("sweep", env, server, [FAST], "--lengths", "16", "--order", "blocked")) == 2
    assert "another plan" in one_error_line(capsys)
    for bad, words in ((["--prompts", str(env["tmp"] / "none.json")], "none.json"),
                       (["--devices", " , "], "--devices"), (["--rounds", "0"], "rounds"),
                       (["--order", "sideways"], "sideways")):
        args = create_args("bad", env, server, [FAST]) + bad
        assert main(args) == 2
        assert words in one_error_line(capsys)
    assert [r["name"] for r in store.list_campaigns()] == ["sweep"]


def test_a_device_that_can_run_nothing_is_skipped_until_it_can(env, capsys):
    with OpenAITestServer(models=[FAST], n=4) as later:
        url = later.base_url
        assert main(["campaign", "create", "later", "--models", FAST, "--prompts", str(env["prompts"]),
                     "--endpoint", url, "--rounds", "1", "--max-tokens", "8", "--devices", "dev-a"]) == 0
    # the endpoint is down: every model skipped, with the reason; run again: nothing new is recorded
    assert main(["campaign", "run", "later"]) == 0
    (dev,) = store.campaign_status("later")["devices"]
    assert dev["state"] == "skipped" and "cannot run here" in dev["skipped"][0]["reason"]
    assert store.campaign_decision_inputs("later") == ({"dev-a": []}, [])
    assert main(["campaign", "run", "later"]) == 0
    from core.store.db import connect
    with connect() as con:
        assert con.execute("SELECT count(*) FROM campaign_runs WHERE campaign = 'later'").fetchone()[0] == 1
    # the endpoint is back (same port): the next `campaign run` runs the plan
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        server = OpenAITestServer(models=[FAST], n=4, port=port).__enter__()
    except OSError:
        pytest.skip("the port was taken again before the server came back")
    try:
        assert main(["campaign", "run", "later"]) == 0
    finally:
        server.__exit__(None, None, None)
    (dev,) = store.campaign_status("later")["devices"]
    assert dev["state"] == "done" and dev["requests"] == dev["planned"] == len(PROMPTS)
