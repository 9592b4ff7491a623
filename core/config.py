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
