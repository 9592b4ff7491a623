"""Paths and settings shared by the CLI and the pages (one definition each)."""
from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
MODELS_DIR = DATA_DIR / "models"          # built starter models (git-ignored)
RUNTIME_DIR = DATA_DIR / "runtime"        # Foundry Local app data, model cache (git-ignored)
PROMPTS_DIR = DATA_DIR / "prompts"
RUBRICS_DIR = DATA_DIR / "rubrics"
DEFAULT_DB = DATA_DIR / "slm_selector.duckdb"
APP_NAME = "slm-selector"


def db_path() -> Path | str:
    """The store in use: `SLM_DB` when set, else data/slm_selector.duckdb.

    A DuckDB file (a Path), or a DuckLake URL kept as text: `ducklake:sqlite:PATH`, `ducklake:postgres:CONNINFO`.
    """
    value = os.environ.get("SLM_DB", "").strip()
    if value.startswith("ducklake:"):
        return value
    return Path(value).expanduser().resolve() if value else DEFAULT_DB


def store_label(target=None) -> str:
    """The store as the UI may show it: a DuckLake postgres URL loses everything but dbname/host/port (no password)."""
    value = str(target if target is not None else db_path())
    if value.startswith("ducklake:postgres:"):
        keep = [p for p in value[len("ducklake:postgres:"):].split() if p.split("=", 1)[0] in ("dbname", "host", "port")]
        return "ducklake:postgres:" + " ".join(keep)
    return value


def device_file() -> Path:
    """Where this machine keeps its device label (local: never in a shared store)."""
    return cache_dir() / "device"


class DeviceLabelError(UserError, ValueError):
    """A device label that breaks the rule (``check_device_label``)."""


MAX_LABEL = 80
RESERVED_LABELS = ("any",)      # a campaign's "every device that joins"


def check_device_label(label, what: str = "device label") -> str:
    """The one rule for a device label, in every command, page, plan and bundle: runs of whitespace become one
    space; then 1 to 80 characters, no comma (labels are listed comma-separated), no control or format
    characters, not 'any'. Returns the label; DeviceLabelError (a UserError) in one line otherwise."""
    import unicodedata
    text = " ".join(str(label if label is not None else "").split())
    problem = ("is empty" if not text else
               f"is longer than {MAX_LABEL} characters" if len(text) > MAX_LABEL else
               "holds a comma (labels are listed comma-separated)" if "," in text else
               "holds control characters" if any(unicodedata.category(c)[0] == "C" for c in text) else
               "is reserved (it means every device)" if text.lower() in RESERVED_LABELS else None)
    if problem:
        shown = "".join(c if unicodedata.category(c)[0] != "C" else "?" for c in text[:40])
        raise DeviceLabelError(f"{what} {shown!r} {problem}: a label is 1 to {MAX_LABEL} characters, without "
                               "commas or control characters")
    return text


def device_label() -> str:
    """This machine's device label: `SLM_DEVICE`, else the label saved once for this machine, else the hostname;
    `SLM_DEVICE` or a saved label that breaks ``check_device_label`` is a DeviceLabelError."""
    import socket
    value = os.environ.get("SLM_DEVICE", "").strip()
    if value:
        return check_device_label(value, "SLM_DEVICE")
    try:
        saved = device_file().read_text().strip()
    except OSError:
        saved = ""
    if saved:
        return check_device_label(saved, f"the device label saved in {device_file()}")
    return socket.gethostname()


def set_device_label(label: str) -> str:
    """Save this machine's device label (``check_device_label``)."""
    label = check_device_label(label)
    device_file().parent.mkdir(parents=True, exist_ok=True)
    device_file().write_text(label + "\n")
    return label


def cache_dir() -> Path:
    """Per-user cache outside the clone (built starter models are kept here, keyed by recipe)."""
    base = os.environ.get("SLM_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / APP_NAME


# ---------------------------------------------------------------- input limits
# Every file parser (prompt sets, models.json, rubrics, annotation files) checks these before it stores
# anything. Each can be raised or lowered with the environment variable of the same name.
LIMITS = {
    "SLM_MAX_FILE_MB": 10,            # size of one input file (prompt set, models.json, rubric, annotations)
    "SLM_MAX_PROMPTS": 10_000,        # prompts in one prompt set
    "SLM_MAX_PROMPT_CHARS": 200_000,  # characters in one prompt
    "SLM_MAX_JSON_DEPTH": 64,         # nesting of arrays/objects in an input file
    "SLM_MAX_OUTPUT_JSON_DEPTH": 256,  # nesting the `valid_json` check follows in a model's output
    "SLM_MAX_BUNDLE_MB": 2048,        # a run bundle's files unpacked, all together (import-run)
    "SLM_MAX_BUNDLE_ROWS": 5_000_000,  # rows in one table of a run bundle
}


def limit(name: str) -> int:
    """The limit `name` (a key of LIMITS): the environment variable when it holds a positive whole number,
    else the default."""
    value = os.environ.get(name, "").strip()
    if value:
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number > 0:
            return number
    return LIMITS[name]


def max_file_bytes() -> int:
    return limit("SLM_MAX_FILE_MB") * 1024 * 1024
