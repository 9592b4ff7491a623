"""Writers for `--json FILE` and other exports."""
from __future__ import annotations

import json
import re
import math
from pathlib import Path
from typing import Any

from core.errors import UserError


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _jsonable(obj.item())
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as pretty JSON (NaN/inf become null). A bad path is a UserError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_jsonable(obj), indent=2, default=str) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


_MD_ACTIVE = re.compile(r"([\\`*\[\]()!|<>])")


def md_text(value: Any) -> str:
    """Untrusted text (model ids, prompt names, ...) placed in Markdown as literal text on one line:
    characters that could make a link, an image, HTML, a table cell or emphasis are escaped."""
    return _MD_ACTIVE.sub(r"\\\1", " ".join(str(value).split()))
