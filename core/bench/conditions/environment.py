"""The environment recorded with every run (metrics.md): the device profile (CPU, cores, RAM, GPU/NPU, OS,
execution providers) and label, Python and runtime versions, and the power and thermal state (AC or
battery, battery level, CPU governor, thermal zones) at the run's start and end. ``power_mismatch``: the
comparability check that runs on AC and on battery are not mixed."""
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


def capture_environment(sys_root: str = "/sys") -> dict:
    from core.config import device_label
    return {
        "device": device_label(),
        **device_profile(),
        "power": power_state(sys_root),   # at the run's start; its end is runs.environment_end
        "python": platform.python_version(),
        "packages": {n: _version(n) for n in PACKAGES},
    }


def model_environment(env: dict, spec, info, prompt_set_hash: str) -> dict:
    """The run's environment plus what one model's engine said (``info``: its LoadInfo, None if it did not load)."""
    return {**env, "model_id": spec.model, "backend": spec.backend, "endpoint": spec.endpoint,
            "model_version": (info.model_version if info else None) or spec.version,
            "execution_provider": (info.execution_provider if info else None) or spec.execution_provider,
            "runtime": info.runtime if info else {}, "prompt_set_hash": prompt_set_hash}


# -- power and thermal state: readers take the sysfs root so tests can lay one out ----------
def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def power_state(sys_root: str = "/sys") -> dict:
    """{"source": "ac" | "battery" | "unknown", "battery_percent", "governor", "thermal_c"}.

    ``source``: "ac" when a mains supply is online, "battery" when a battery discharges and no mains is
    online, "unknown" when the kernel lists no supply (a desktop or a VM, usually) or they disagree.
    ``thermal_c``: each thermal zone's temperature (its type -> degrees C)."""
    root = Path(sys_root)
    mains_online, discharging, percent = None, False, None
    for sup in sorted((root / "class" / "power_supply").glob("*")):
        kind = _text(sup / "type")
        if kind == "Mains":
            mains_online = bool(mains_online) or _text(sup / "online") == "1"
        elif kind == "Battery":
            discharging = discharging or _text(sup / "status") == "Discharging"
            cap = _text(sup / "capacity")
            if cap and cap.isdigit():
                percent = int(cap) if percent is None else min(percent, int(cap))
    if mains_online:
        source = "ac"
    elif discharging:
        source = "battery"
    elif mains_online is False and percent is not None:
        source = "battery"
    else:
        source = "unknown"
    governor = (_text(root / "devices/system/cpu/cpu0/cpufreq/scaling_governor")
                or _text(root / "devices/system/cpu/cpufreq/policy0/scaling_governor"))
    thermal = {}
    for zone in sorted((root / "class" / "thermal").glob("thermal_zone*")):
        t = _text(zone / "temp")
        try:
            value = int(t) / 1000.0
        except (TypeError, ValueError):
            continue
        name = _text(zone / "type") or zone.name
        thermal[name if name not in thermal else f"{name} ({zone.name})"] = value
    return {"source": source, "battery_percent": percent, "governor": governor, "thermal_c": thermal}


def power_mismatch(profiles: list[dict]) -> str | None:
    """One line when ``profiles`` (runs' environments, each with ``power`` from ``power_state``) mix runs
    on AC power and on battery, else None (an unknown source mixes with either)."""
    by_source: dict[str, list[str]] = {}
    for env in profiles:
        src = ((env or {}).get("power") or {}).get("source")
        if src in ("ac", "battery"):
            by_source.setdefault(src, []).append(str((env or {}).get("device") or "unknown device"))
    if len(by_source) < 2:
        return None
    return ("these runs mix AC power ({}) and battery ({}): a laptop on battery may run slower; compare runs "
            "on the same power, or allow mixing".format(", ".join(sorted(set(by_source["ac"]))),
                                                       ", ".join(sorted(set(by_source["battery"])))))
