"""A campaign's plan as the benchmark reads it: built from the user's inputs, turned back into the benchmark's
own Settings and PromptSet on each device, and the memory check that skips a model a device cannot hold.
The store side (versions, links, status) is core.store.campaigns."""
from __future__ import annotations

from dataclasses import fields

from core.bench.run.bounds import check_settings
from core.bench.run.inputs import PromptSet, Settings
from core.errors import UserError

PLAN_SETTINGS = ("rounds", "warmup", "max_tokens", "concurrency")
OPTIONAL_SETTINGS = ("lengths", "order")     # the length sweep and request order (other issues add them to Settings)


def parse_devices(text: str | None) -> list[str] | str:
    """`a,b` -> ["a", "b"]; empty or `any` -> "any" (every device that joins)."""
    from core.config import check_device_label
    if text is None or text.strip().lower() in ("", "any"):
        return "any"
    labels = list(dict.fromkeys(check_device_label(x, "--devices: the label") for x in text.split(",") if x.strip()))
    if not labels:
        raise UserError("--devices: give device labels separated by commas, or 'any'")
    return labels


def make_plan(models: list[str], *, prompt_set: PromptSet, settings: Settings, devices: list[str] | str,
              endpoint: str | None = None, api_key_env: str | None = None, config: dict | None = None,
              lengths: list[int] | None = None, order: str | None = None) -> dict:
    """The plan stored with a campaign. Models without an endpoint run on the device's local engines
    (Foundry Local or llama.cpp, resolved there); with one, on that OpenAI-compatible endpoint."""
    if not models:
        raise UserError("a campaign needs at least one model (--models ID[,ID...])")
    config = config or {}
    if endpoint:
        from core.catalog.endpoints import normalize_base_url
        endpoint = normalize_base_url(endpoint)       # a URL with credentials is refused, never stored
    if endpoint and api_key_env and api_key_env.strip():
        from core.output import check_env_name
        api_key_env = check_env_name(api_key_env)     # a key given as the name is refused, never stored
    else:
        api_key_env = None
    plan_models = [{"model": m, "engine": "openai" if endpoint else "local", "endpoint": endpoint,
                    "api_key_env": api_key_env, "size_mb": config.get(m, {}).get("size_mb")}
                   for m in dict.fromkeys(models)]
    settings = settings.validate()
    s = {k: getattr(settings, k) for k in PLAN_SETTINGS}
    s["lengths"] = sorted(set(lengths)) if lengths else None
    s["order"] = order or None
    check_settings(**{k: s[k] for k in PLAN_SETTINGS}, lengths=s["lengths"], prompts=len(prompt_set.prompts))
    return {"models": plan_models, "settings": s, "prompt_set_hash": prompt_set.hash, "devices": devices}


def plan_endpoints(plan: dict) -> list[str]:
    """The endpoints a plan's models name, once each, in order."""
    return list(dict.fromkeys(m["endpoint"] for m in plan["models"] if m.get("endpoint")))


def pending_endpoints(plan: dict) -> list[str]:
    """The plan's endpoints this machine has not accepted: nothing is sent there until it does."""
    from core.catalog.accepted import pending
    return pending(plan_endpoints(plan))


def accept_pending(plan: dict) -> list[str]:
    """Accept the plan's pending endpoints on this machine, without a key (the user saw them: `campaign run
    --accept-endpoints` or the Benchmark page's confirm); returns them."""
    from core.catalog.accepted import accept
    return [accept(url, None) for url in pending_endpoints(plan)]


def plan_settings(plan: dict, prompts: int | None = None, what: str = "plan.settings") -> tuple[Settings, list[str]]:
    """The benchmark's Settings for a plan, and the plan's settings this version's Settings does not have
    (stored with the campaign, not applied: named so the user knows). Every setting passes ``bench``'s bounds
    first (``core.bench.run.bounds``), with ``prompts`` the prompt set's size when known: on create, on import and
    on run alike."""
    known = {f.name for f in fields(Settings)}
    s = plan["settings"]
    check_settings(**{k: s.get(k) for k in PLAN_SETTINGS}, lengths=s.get("lengths"), prompts=prompts, what=what)
    values = {k: s[k] for k in PLAN_SETTINGS}
    ignored = []
    for k in OPTIONAL_SETTINGS:
        if s.get(k) is None:
            continue
        if k in known:
            values[k] = s[k]
        else:
            ignored.append(k)
    return Settings(**values).validate(), ignored


def plan_prompt_set(campaign: dict) -> PromptSet:
    ps = PromptSet(name=campaign.get("prompt_set") or campaign["name"],
                   prompts=[{"id": p["id"], "text": p["text"], "tags": p.get("tags") or []}
                            for p in campaign["prompts"]])
    if ps.hash != campaign["prompt_set_hash"]:
        raise UserError(f"campaign {campaign['name']!r}: its stored prompts do not match its prompt set hash")
    return ps


def memory_reason(size_mb: float | None, available_mb: float | None = None) -> str | None:
    """Why a model of ``size_mb`` does not fit in this device's available memory, or None (fits, or unknown)."""
    if size_mb is None:
        return None
    if available_mb is None:
        import psutil
        available_mb = psutil.virtual_memory().available / 1e6
    if float(size_mb) > available_mb:
        return f"does not fit in memory: the model is {float(size_mb):,.0f} MB, {available_mb:,.0f} MB available"
    return None


PLAN_FORMAT = "slm-selector-campaign-plan"
ENGINES = ("openai", "local")


def plan_file(campaign: dict) -> dict:
    """A campaign version as a file another store can be given (`campaign export` / `campaign create --from`)."""
    return {"format": PLAN_FORMAT, "name": campaign["name"], "version": campaign["version"],
            "prompt_set": campaign.get("prompt_set"), "prompts": campaign["prompts"], "plan": campaign["plan"]}


def read_plan_file(path) -> tuple[dict, PromptSet]:
    """(plan, prompt set) from a plan file, every field checked (it comes from another machine): UserError in one
    line naming the file and the field. The plan is rebuilt from the checked fields, so it hashes as it did there."""
    from pathlib import Path

    from core.bench.run.inputs import parse_prompts
    from core.catalog.endpoints import normalize_base_url
    from core.config import check_device_label
    from core.output import check_env_name, load_json
    p = Path(path)
    bad = f"campaign plan {p.name}"
    data = load_json(p, what="campaign plan")
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or not isinstance(data.get("plan"), dict):
        raise UserError(f"{bad} is not a campaign plan (python -m core campaign export NAME --out FILE makes one)")
    plan = data["plan"]
    prompt_set = parse_prompts(data.get("prompts"), name=str(data.get("prompt_set") or p.name)[:200])
    models = plan.get("models")
    if not isinstance(models, list) or not models:
        raise UserError(f"{bad}: plan.models must be a non-empty list")
    checked = []
    for i, m in enumerate(models, 1):
        if not isinstance(m, dict) or not isinstance(m.get("model"), str) or not m["model"].strip() \
                or len(m["model"]) > 200 or m.get("engine") not in ENGINES:
            raise UserError(f"{bad}: plan.models[{i}] needs a model id (text) and an engine ({' | '.join(ENGINES)})")
        for key in ("endpoint", "api_key_env"):
            if m.get(key) is not None and (not isinstance(m[key], str) or len(m[key]) > 2000):
                raise UserError(f"{bad}: plan.models[{i}].{key} must be text")
        if (m.get("endpoint") is None) != (m["engine"] == "local"):
            raise UserError(f"{bad}: plan.models[{i}]: an openai model needs an endpoint, a local one has none")
        endpoint, env = m.get("endpoint"), m.get("api_key_env")
        if endpoint is not None:
            try:    # credentials in the URL (user:password@, ?api-key=) are refused, never stored
                endpoint = normalize_base_url(endpoint)
            except UserError as exc:
                raise UserError(f"{bad}: plan.models[{i}].{exc.one_line()}") from None
        if env is not None:
            env = check_env_name(env, f"{bad}: plan.models[{i}].api_key_env") if endpoint else None
        size = m.get("size_mb")
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, float)) or size < 0):
            raise UserError(f"{bad}: plan.models[{i}].size_mb must be a number of megabytes")
        checked.append({"model": m["model"], "engine": m["engine"], "endpoint": endpoint,
                        "api_key_env": env, "size_mb": size})
    s = plan.get("settings")
    if not isinstance(s, dict):
        raise UserError(f"{bad}: plan.settings must be an object")
    for key in ("rounds", "warmup", "max_tokens"):
        if isinstance(s.get(key), bool) or not isinstance(s.get(key), int):
            raise UserError(f"{bad}: plan.settings.{key} must be a whole number")
    conc, lengths = s.get("concurrency"), s.get("lengths")
    if not isinstance(conc, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in conc):
        raise UserError(f"{bad}: plan.settings.concurrency must be a list of whole numbers")
    if lengths is not None and (not isinstance(lengths, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lengths)):
        raise UserError(f"{bad}: plan.settings.lengths must be a list of whole numbers")
    if s.get("order") is not None and not isinstance(s["order"], str):
        raise UserError(f"{bad}: plan.settings.order must be text")
    devices = plan.get("devices")
    if devices != "any" and not (isinstance(devices, list) and devices and len(devices) <= 10_000
                                 and all(isinstance(d, str) for d in devices)):
        raise UserError(f"{bad}: plan.devices must be 'any' or a list of device labels")
    if devices != "any":
        for d in devices:
            if check_device_label(d, f"{bad}: plan.devices: the label") != d:
                raise UserError(f"{bad}: plan.devices: the label {d[:40]!r} has runs of whitespace")
    if plan.get("prompt_set_hash") != prompt_set.hash:
        raise UserError(f"{bad}: its prompts do not match its prompt_set_hash (the file was changed)")
    rebuilt = {"models": checked, "settings": {k: s.get(k) for k in PLAN_SETTINGS + OPTIONAL_SETTINGS},
               "prompt_set_hash": prompt_set.hash, "devices": devices}
    plan_settings(rebuilt, len(prompt_set.prompts), f"{bad}: plan.settings")   # bench's bounds, then its checks
    return rebuilt, prompt_set
