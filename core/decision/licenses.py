"""License knowledge, as data (data/licenses.json).

A license id that is missing or not listed is *unknown*: flagged, and never assumed permissive
(it fails "commercial use required" and scores 0 on the license criterion).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from core.config import DATA_DIR

LICENSES_FILE = DATA_DIR / "licenses.json"

# Value of the license criterion (already 0..1, 1 best): how freely the model can be shipped.
COMMERCIAL_SCORE = {True: 1.0, "conditional": 0.5, False: 0.0, None: 0.0}


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict, dict]:
    data = json.loads(Path(path).read_text())
    table = data["licenses"]
    alias = {}
    for lid, info in table.items():
        alias[lid.lower()] = lid
        for a in info.get("aliases", []):
            alias[a.strip().lower()] = lid
    return table, alias


def known_licenses(path: Path | None = None) -> dict[str, dict]:
    """{license id: info} as shipped (the "unknown" entry included)."""
    table, _ = _load(str(path or LICENSES_FILE))
    return dict(table)


def canonical_id(raw: str | None, path: Path | None = None) -> str | None:
    """The listed id for `raw` (case and aliases folded), or None when it is not listed."""
    _, alias = _load(str(path or LICENSES_FILE))
    key = (raw or "").strip().lower()
    lid = alias.get(key)
    if lid is None and key.endswith(" license"):
        lid = alias.get(key[: -len(" license")])
    return lid


def license_info(raw: str | None, path: Path | None = None) -> dict:
    """What we know about a license string as stored in run_models.license.

    Returns {"id", "raw", "known", "name", "commercial_use", "attribution", "restrictions", "score", "flag"}.
    `known` is False for a missing, "unknown" or unlisted id; `flag` is then a one-line warning.
    """
    table, _ = _load(str(path or LICENSES_FILE))
    lid = canonical_id(raw, path)
    raw_text = (raw or "").strip() or None
    if lid is None or lid == "unknown":
        info = table["unknown"]
        if raw_text and lid is None:
            flag = f"license '{raw_text}' is not in data/licenses.json: treated as unknown, not as permissive"
        else:
            flag = "license unknown: commercial use not established"
        return {
            "id": "unknown",
            "raw": raw_text,
            "known": False,
            "name": info["name"],
            "commercial_use": None,
            "attribution": info.get("attribution"),
            "restrictions": list(info.get("restrictions", [])),
            "score": COMMERCIAL_SCORE[None],
            "flag": flag,
        }
    info = table[lid]
    commercial = info["commercial_use"]
    return {
        "id": lid,
        "raw": raw_text,
        "known": True,
        "name": info["name"],
        "commercial_use": commercial,
        "attribution": info.get("attribution"),
        "restrictions": list(info.get("restrictions", [])),
        "score": COMMERCIAL_SCORE[commercial],
        "flag": None,
    }


def commercial_problem(info: dict) -> str | None:
    """Why `info` fails "commercial use required", or None when it passes (conditional passes)."""
    cu = info["commercial_use"]
    if cu is True or cu == "conditional":
        return None
    if cu is False:
        return f"license {info['id']} does not allow commercial use"
    return "license unknown: commercial use not established"
