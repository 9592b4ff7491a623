"""Paths and settings shared by the CLI and the pages (one definition each)."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
MODELS_DIR = DATA_DIR / "models"          # built starter models (git-ignored)
RUNTIME_DIR = DATA_DIR / "runtime"        # Foundry Local app data, model cache (git-ignored)
PROMPTS_DIR = DATA_DIR / "prompts"
RUBRICS_DIR = DATA_DIR / "rubrics"
DEFAULT_DB = DATA_DIR / "slm_selector.duckdb"
APP_NAME = "slm-selector"


def db_path() -> Path:
    """The DuckDB file in use: `SLM_DB` when set, else data/slm_selector.duckdb."""
    value = os.environ.get("SLM_DB", "").strip()
    return Path(value).expanduser().resolve() if value else DEFAULT_DB


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
