"""The folders a starter build publishes: sizes, the recipe marker that says a folder is complete, partial
folders renamed when complete, hard links from the cache, a lock per build, the free disk a build needs."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


MARKER = ".slm-recipe.json"


class StepError(Exception):
    """A step of one model failed; the message says which step and why (one line)."""


def _mb(path: Path) -> float:
    from core.catalog.foundry import folder_size_mb

    return folder_size_mb(path) or 0.0


def _fmt_mb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.1f} MB"


def _is_complete(folder: Path, digest: str) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("hash") != digest:
        return False
    from core.catalog.foundry import validate_model_folder

    return not validate_model_folder(folder)


def _write_marker(folder: Path, recipe: dict, digest: str) -> None:
    (folder / MARKER).write_text(json.dumps({"id": recipe["id"], "hash": digest, "built_at": time.time()},
                                            indent=2), encoding="utf-8")


def _partial(target: Path) -> Path:
    """A fresh temporary sibling of `target` (same filesystem, so the final rename is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    tmp.chmod(0o755)
    return tmp


def _clean_partials(folder: Path) -> None:
    if folder.is_dir():
        for entry in folder.glob(".*.partial-*"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _publish(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    os.replace(tmp, target)


def _link_tree(src: Path, dst: Path) -> None:
    """Copy `src` into `dst` with hard links where possible (same filesystem), real copies otherwise."""
    for dirpath, _dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            s, d = Path(dirpath) / name, dst / rel / name
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)


def _install(cached: Path, target: Path) -> None:
    """A built folder from the cache into place: hard-linked into a temporary sibling, then renamed."""
    tmp = _partial(target)
    try:
        _link_tree(cached, tmp)
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _link_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    return lines[-1] if lines else "no output"


@contextlib.contextmanager
def _lock(path: Path):
    """One setup-models at a time per cache (a second one waits)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_disk(folder: Path, need_gb: float, what: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(folder).free / 1024**3
    if free_gb < need_gb:
        raise StepError(f"not enough disk space to build {what}: need about {need_gb:.1f} GB free in {folder}, "
                        f"have {free_gb:.1f} GB")

