"""The environment recorded with every run (metrics.md): the device profile (CPU, cores, RAM, GPU/NPU, OS,
execution providers) and label, Python and runtime versions."""
from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
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


_PCI_VENDORS = {"0x10de": "NVIDIA", "0x1002": "AMD", "0x8086": "Intel", "0x5143": "Qualcomm", "0x106b": "Apple"}


def _gpus() -> list[str]:
    """GPU names: nvidia-smi when present, else the display devices the kernel lists (vendor only)."""
    out: list[str] = []
    if shutil.which("nvidia-smi"):
        try:
            res = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=5)
            out = [" ".join(line.split()) for line in res.stdout.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError):
            out = []
    if not out:
        for card in sorted(glob.glob("/sys/class/drm/card[0-9]/device/vendor")):
            try:
                vendor = Path(card).read_text().strip()
            except OSError:
                continue
            out.append(f"{_PCI_VENDORS.get(vendor, vendor)} GPU")
    if not out and platform.system() == "Darwin" and platform.machine() == "arm64":
        out = ["Apple GPU (integrated)"]
    return out


def _npus() -> list[str]:
    """NPUs the kernel exposes as accelerators (Intel NPU, AMD XDNA, ...): /sys/class/accel."""
    out = []
    for dev in sorted(glob.glob("/sys/class/accel/accel*")):
        try:
            driver = Path(os.path.realpath(Path(dev) / "device" / "driver")).name
        except OSError:
            driver = "?"
        out.append(f"{Path(dev).name} ({driver})")
    return out


def _execution_providers() -> list[str]:
    """ONNX Runtime's execution providers on this machine (what Foundry Local can use), when installed."""
    import importlib.util
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    try:
        import onnxruntime
        return list(onnxruntime.get_available_providers())
    except Exception:  # a broken install: unknown, never a failed run
        return []


def device_profile() -> dict:
    """What the device is: CPU model, cores, RAM, GPU/NPU, OS, execution providers."""
    import psutil
    return {
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "gpu": _gpus(),
        "npu": _npus(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "execution_providers": _execution_providers(),
    }


def capture_environment() -> dict:
    from core.config import device_label
    return {
        "device": device_label(),
        **device_profile(),
        "python": platform.python_version(),
        "packages": {n: _version(n) for n in PACKAGES},
    }


def model_environment(env: dict, spec, info, prompt_set_hash: str) -> dict:
    """The run's environment plus what one model's engine said (``info``: its LoadInfo, None if it did not load)."""
    return {**env, "model_id": spec.model, "backend": spec.backend, "endpoint": spec.endpoint,
            "model_version": (info.model_version if info else None) or spec.version,
            "execution_provider": (info.execution_provider if info else None) or spec.execution_provider,
            "runtime": info.runtime if info else {}, "prompt_set_hash": prompt_set_hash}
