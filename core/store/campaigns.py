"""Fleet campaigns in the store: one plan every target device runs (tables in migrations/015_campaigns.sql).

A campaign is a name with numbered versions; a version's plan (models per engine, the prompt set by content
and sha256, settings, target devices) never changes: ``create_campaign`` with another plan under a name that
exists is refused unless ``new_version`` (then it becomes ``NAME v2``...). ``campaign_runs`` links a run to
the campaign (name, version and the plan's sha256) and the device that ran it, with the models it skipped and
why; it is run-scoped, so it travels in run bundles (``core.store.bundles.RUN_TABLES``) and a bundle imported
into another store counts there as long as that store holds the same plan (matched by its sha256).
Every write is one transaction, run again when its commit conflicts (``@retrying``).
"""
from __future__ import annotations

import hashlib
import json

from core.errors import UserError
from core.store.db import connect, fetch_dicts, from_json, retrying, to_json, utc_now

ANY = "any"
JSON_COLUMNS = {"plan", "prompts", "devices", "skipped"}
SKIPPED_PREFIX = "skipped-"      # the run id of a link whose device could run none of the models (no runs row)


def plan_sha256(plan: dict) -> str:
    """The hash that names a plan: its canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def display_name(name: str, version: int) -> str:
    return f"{name} v{version}"


def _versions(con, name: str) -> list[dict]:
    return fetch_dicts(con.execute("SELECT * FROM campaigns WHERE name = ? ORDER BY version", [name]), JSON_COLUMNS)


@retrying
def create_campaign(name: str, plan: dict, prompts: list[dict], prompt_set: str | None,
                    new_version: bool = False) -> dict:
    """Store a campaign; {"name", "version", "created": bool, "plan_sha256"}.

    The same plan again: nothing changes (created False). Another plan under an existing name: UserError,
    unless ``new_version`` (the next version number). ``plan`` holds models, settings, prompt_set_hash, devices.
    """
    name = " ".join(str(name).split())
    if not name or len(name) > 120:
        raise UserError("a campaign name must be 1 to 120 characters")
    sha = plan_sha256(plan)
    with connect() as con:
        versions = _versions(con, name)
        if versions:
            latest = versions[-1]
            if latest["plan_sha256"] == sha:
                return {"name": name, "version": latest["version"], "created": False, "plan_sha256": sha}
            if not new_version:
                ran = con.execute("SELECT count(DISTINCT device) FROM campaign_runs WHERE campaign = ? AND version = ?",
                                  [name, latest["version"]]).fetchone()[0]
                why = f"{ran} device(s) ran it" if ran else "its plan is fixed once made"
                raise UserError(f"campaign {display_name(name, latest['version'])} exists with another plan ({why}): "
                                "use --new-version to make the next version, or another name")
        version = (versions[-1]["version"] + 1) if versions else 1
        con.execute("INSERT INTO campaigns (name, version, created_at, plan, plan_sha256, prompt_set, prompt_set_hash, "
                    "prompts, devices) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [name, version, utc_now(), to_json(plan), sha, prompt_set, plan["prompt_set_hash"],
                     to_json(prompts), to_json(plan["devices"])])
    return {"name": name, "version": version, "created": True, "plan_sha256": sha}


def get_campaign(name: str, version: int | None = None) -> dict:
    """A campaign version (the latest when ``version`` is None); UserError when there is none."""
    with connect() as con:
        versions = _versions(con, name)
    if not versions:
        raise UserError(f"unknown campaign {name!r} (python -m core campaign list shows them)")
    if version is None:
        return versions[-1]
    for v in versions:
        if v["version"] == version:
            return v
    have = ", ".join(str(v["version"]) for v in versions)
    raise UserError(f"campaign {name!r} has no version {version} (it has {have})")


def list_campaigns() -> list[dict]:
    """Every campaign version, newest first per name: name, version, display, created_at, models, devices, runs."""
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT c.name, c.version, c.created_at, c.plan, c.devices, c.prompt_set, "
            " (SELECT count(DISTINCT l.device) FROM campaign_runs l WHERE l.campaign = c.name "
            "   AND l.plan_sha256 = c.plan_sha256) AS devices_ran "
            "FROM campaigns c ORDER BY c.name, c.version DESC"), JSON_COLUMNS)
    for r in rows:
        r["display"] = display_name(r["name"], r["version"])
        r["models"] = [m["model"] for m in r.pop("plan")["models"]]
    return rows


@retrying
def link_run(run_id: str, campaign: dict, device: str, skipped: list[dict]) -> None:
    """Record that ``run_id`` is ``device``'s run of this campaign version (skipped: [{model, engine, reason}])."""
    with connect() as con:
        con.execute("DELETE FROM campaign_runs WHERE run_id = ?", [run_id])
        con.execute("INSERT INTO campaign_runs (run_id, campaign, version, plan_sha256, device, skipped, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [run_id, campaign["name"], campaign["version"], campaign["plan_sha256"], device, to_json(skipped),
                     utc_now()])


RUN_SETTINGS = ("rounds", "warmup", "max_tokens")


def ran_the_plan(campaign: dict, link: dict) -> bool:
    """Whether a link's run is a run of this plan: its prompt set (by hash), its settings, its models (no model
    the plan lacks) and the device the link names. A link whose run is not in the store (a device that skipped
    every model) is taken as it is. A link written by hand or brought by a bundle that points another run at
    the campaign is not the campaign's."""
    if link["status"] is None:
        return True
    settings = from_json(link["run_settings"]) or {}
    plan = campaign["plan"]["settings"]
    return (link["prompt_set_hash"] == campaign["prompt_set_hash"] and link["run_device"] == link["device"]
            and not link["foreign_models"] and isinstance(settings, dict)
            and all(settings.get(k) == plan.get(k) for k in RUN_SETTINGS)
            and sorted(settings.get("concurrency") or []) == sorted(plan.get("concurrency") or []))


def _links(campaign: dict) -> list[dict]:
    """This version's links whose run ran this plan (``ran_the_plan``), with their run's status and measured
    request counts (None: no runs row)."""
    models = [m["model"] for m in campaign["plan"]["models"]]
    with connect() as con:
        rows = fetch_dicts(con.execute(
            "SELECT l.run_id, l.device, l.skipped, l.created_at, r.status, r.prompt_set_hash, "
            " r.settings AS run_settings, r.device AS run_device, "
            " (SELECT count(*) FROM run_models m WHERE m.run_id = l.run_id AND NOT list_contains(?, m.model) "
            "   AND NOT list_contains(?, coalesce(m.label, m.model))) AS foreign_models, "
            " (SELECT count(*) FROM requests q WHERE q.run_id = l.run_id AND NOT q.warmup) AS requests, "
            " (SELECT count(*) FROM requests q WHERE q.run_id = l.run_id AND NOT q.warmup AND NOT q.ok) AS failed "
            "FROM campaign_runs l LEFT JOIN runs r USING (run_id) "
            "WHERE l.campaign = ? AND l.plan_sha256 = ? ORDER BY l.created_at, l.run_id",
            [models, models, campaign["name"], campaign["plan_sha256"]]), JSON_COLUMNS)
    return [{k: v for k, v in link.items() if k not in ("prompt_set_hash", "run_settings", "run_device",
                                                          "foreign_models")}
            for link in rows if ran_the_plan(campaign, link)]


STATUS = {"completed": "done", "running": "running", "interrupted": "interrupted"}


def device_state(link: dict | None) -> str:
    """not started | running | interrupted | done | skipped (the device could run none of the models)."""
    if link is None:
        return "not started"
    if link["status"] is None:
        return "skipped" if link["run_id"].startswith(SKIPPED_PREFIX) else "not started"
    return STATUS.get(link["status"], link["status"])


def planned_requests(campaign: dict, models: int) -> int:
    s = campaign["plan"]["settings"]
    return int(s["rounds"]) * len(campaign["prompts"]) * len(s["concurrency"]) * models


def device_link(campaign: dict, device: str) -> dict | None:
    """The device's latest link to this campaign version (a done run first), or None."""
    mine = [link for link in _links(campaign) if link["device"] == device]
    done = [link for link in mine if device_state(link) == "done"]
    return (done or mine or [None])[-1]


def campaign_status(name: str, version: int | None = None) -> dict:
    """{"name", "version", "display", "targets", "devices": [{device, state, run_id, requests, failed, planned,
    skipped}], "missing": [target devices without a done run]} -- per device its best link (done first)."""
    c = get_campaign(name, version)
    links = _links(c)
    targets = c["devices"]
    names = [] if targets == ANY else list(targets)
    names += sorted({link["device"] for link in links} - set(names))
    devices = []
    for device in names:
        mine = [link for link in links if link["device"] == device]
        done = [link for link in mine if device_state(link) == "done"]
        link = (done or mine or [None])[-1]
        skipped = (link or {}).get("skipped") or []
        models = len(c["plan"]["models"]) - len(skipped)
        devices.append({"device": device, "state": device_state(link), "run_id": (link or {}).get("run_id"),
                        "requests": (link or {}).get("requests") or 0, "failed": (link or {}).get("failed") or 0,
                        "planned": planned_requests(c, models), "skipped": skipped,
                        "target": targets == ANY or device in targets})
    missing = [d["device"] for d in devices if d["target"] and d["state"] not in ("done", "skipped")]
    return {"name": c["name"], "version": c["version"], "display": display_name(c["name"], c["version"]),
            "targets": targets, "plan_sha256": c["plan_sha256"], "devices": devices, "missing": missing}


def campaign_decision_inputs(name: str, version: int | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """(run_ids_by_device, missing_devices) for deciding over a campaign (the latest version unless given).

    run_ids_by_device: every device with a done campaign run -> [its run id]; a device whose every model was
    skipped maps to [] (it ran the plan and could run nothing). missing_devices: target devices without a done
    run (not started, running or interrupted), in the campaign's order; [] for a campaign open to any device.
    The runs are comparable by construction: one prompt set, one settings object, one model list.
    """
    status = campaign_status(name, version)
    by_device = {d["device"]: ([d["run_id"]] if d["state"] == "done" else [])
                 for d in status["devices"] if d["state"] in ("done", "skipped")}
    return by_device, status["missing"]
