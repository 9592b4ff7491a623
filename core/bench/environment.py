"""The environment recorded with every run (metrics.md): CPU, cores, RAM, OS, Python, runtime versions."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = ("foundry-local-sdk", "onnxruntime", "onnxruntime-genai-core", "llama_cpp_python", "openai",
            "duckdb", "numpy")


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def capture_environment() -> dict:
    import psutil
    return {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": {n: _version(n) for n in PACKAGES},
    }


def model_environment(env: dict, spec, info, prompt_set_hash: str) -> dict:
    """The run's environment plus what one model's engine said (``info``: its LoadInfo, None if it did not load)."""
    return {**env, "model_id": spec.model, "backend": spec.backend, "endpoint": spec.endpoint,
            "model_version": (info.model_version if info else None) or spec.version,
            "execution_provider": (info.execution_provider if info else None) or spec.execution_provider,
            "runtime": info.runtime if info else {}, "prompt_set_hash": prompt_set_hash}
