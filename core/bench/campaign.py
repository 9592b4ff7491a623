"""A campaign's plan as the benchmark reads it: built from the user's inputs, turned back into the benchmark's
own Settings and PromptSet on each device, and the memory check that skips a model a device cannot hold.
The store side (versions, links, status) is core.store.campaigns."""
from __future__ import annotations

from dataclasses import fields

from core.bench.inputs import PromptSet, Settings
from core.errors import UserError

PLAN_SETTINGS = ("rounds", "warmup", "max_tokens", "concurrency")
OPTIONAL_SETTINGS = ("lengths", "order")     # the length sweep and request order (other issues add them to Settings)


def parse_devices(text: str | None) -> list[str] | str:
    """`a,b` -> ["a", "b"]; empty or `any` -> "any" (every device that joins)."""
    if text is None or text.strip().lower() in ("", "any"):
        return "any"
    labels = list(dict.fromkeys(" ".join(x.split())[:80] for x in text.split(",") if x.strip()))
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
        endpoint = normalize_base_url(endpoint)
    plan_models = [{"model": m, "engine": "openai" if endpoint else "local", "endpoint": endpoint,
                    "api_key_env": api_key_env if endpoint else None,
                    "size_mb": config.get(m, {}).get("size_mb")} for m in dict.fromkeys(models)]
    settings = settings.validate()
    s = {k: getattr(settings, k) for k in PLAN_SETTINGS}
    s["lengths"] = sorted(set(lengths)) if lengths else None
    s["order"] = order or None
    return {"models": plan_models, "settings": s, "prompt_set_hash": prompt_set.hash, "devices": devices}


def plan_settings(plan: dict) -> tuple[Settings, list[str]]:
    """The benchmark's Settings for a plan, and the plan's settings this version's Settings does not have
    (stored with the campaign, not applied: named so the user knows)."""
    known = {f.name for f in fields(Settings)}
    s = plan["settings"]
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
