"""Power and thermal state from a directory laid out like sysfs, the AC/battery check, and the state at a
real run's start and end in the store."""
import pytest

from core.bench.conditions.environment import power_mismatch, power_state
from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.run.progress import Progress
from core.bench.run.runner import run_benchmark
from core.store import bench as db
from tests.support.openai_server import OpenAITestServer
from tests.support.store import migrated


def sysfs(root, *, mains=None, battery=None, capacity=None, governor="powersave", temps=(("x86_pkg_temp", 51000),)):
    ps = root / "class/power_supply"
    if mains is not None:
        (ps / "AC").mkdir(parents=True)
        (ps / "AC/type").write_text("Mains\n")
        (ps / "AC/online").write_text("1\n" if mains else "0\n")
    if battery is not None:
        (ps / "BAT0").mkdir(parents=True)
        (ps / "BAT0/type").write_text("Battery\n")
        (ps / "BAT0/status").write_text(battery + "\n")
        (ps / "BAT0/capacity").write_text(f"{capacity}\n")
    if governor:
        g = root / "devices/system/cpu/cpu0/cpufreq"
        g.mkdir(parents=True)
        (g / "scaling_governor").write_text(governor + "\n")
    for i, (kind, milli) in enumerate(temps):
        z = root / f"class/thermal/thermal_zone{i}"
        z.mkdir(parents=True)
        (z / "type").write_text(kind + "\n")
        (z / "temp").write_text(f"{milli}\n")
    return str(root)


SYSFS = {"power": "sysfs (Linux only)", "governor": "sysfs (Linux only)", "thermal_c": "sysfs (Linux only)"}


def test_power_state_reads_ac_battery_governor_and_thermal_zones(tmp_path):
    ac = power_state(sysfs(tmp_path / "a", mains=True, battery="Charging", capacity=80))
    assert ac == {"source": "ac", "battery_percent": 80, "governor": "powersave", "thermal_c": {"x86_pkg_temp": 51.0},
                  "sources": SYSFS}
    bat = power_state(sysfs(tmp_path / "b", mains=False, battery="Discharging", capacity=42, governor="performance",
                            temps=(("acpitz", 40500), ("acpitz", 45000))))
    assert bat["source"] == "battery" and bat["battery_percent"] == 42 and bat["governor"] == "performance"
    assert bat["thermal_c"] == {"acpitz": 40.5, "acpitz (thermal_zone1)": 45.0}
    bare = power_state(str(tmp_path / "none"))     # a VM or a desktop listing no supply
    assert bare == {"source": "unknown", "battery_percent": None, "governor": None, "thermal_c": {}, "sources": SYSFS}


def test_on_the_real_machine_ac_and_battery_come_from_psutil_on_every_os(monkeypatch):
    """psutil's battery (the branch Windows and macOS take): a laptop's battery cannot be plugged into this
    machine, so psutil's answer is replaced by the values it gives on one."""
    import collections

    import psutil
    sbattery = collections.namedtuple("sbattery", "percent secsleft power_plugged")
    monkeypatch.setattr(psutil, "sensors_battery", lambda: sbattery(37.6, 5000, False))
    state = power_state("/sys")
    assert state["source"] == "battery" and state["battery_percent"] == 38 and state["sources"]["power"] == "psutil"
    assert state["sources"]["thermal_c"] == "sysfs (Linux only)"
    monkeypatch.setattr(psutil, "sensors_battery", lambda: sbattery(100.0, -2, True))
    assert power_state("/sys")["source"] == "ac"
    monkeypatch.setattr(psutil, "sensors_battery", lambda: None)   # a desktop or a VM: the kernel's supplies
    assert power_state("/sys")["sources"]["power"] == "sysfs (Linux only)"


def test_power_mismatch_refuses_to_mix_ac_and_battery():
    ac = {"device": "laptop-a", "power": {"source": "ac"}}
    bat = {"device": "laptop-b", "power": {"source": "battery"}}
    unknown = {"device": "vm", "power": {"source": "unknown"}}
    assert power_mismatch([ac, ac, unknown]) is None and power_mismatch([bat, {}]) is None
    msg = power_mismatch([ac, bat])
    assert "AC power (laptop-a)" in msg and "battery (laptop-b)" in msg


@pytest.fixture(autouse=True)
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "run.duckdb")))


class Warms(Progress):
    """The CPU warms up while the run goes: the thermal zone reads 63 C from the first request on."""

    def __init__(self, zone):
        self.zone = zone

    def on_update(self, progress, model):
        if model.done:
            self.zone.write_text("63000\n")


def test_a_run_records_power_and_thermal_state_at_start_and_end(tmp_path):
    root = sysfs(tmp_path / "sys", mains=False, battery="Discharging", capacity=55)
    with OpenAITestServer(models=["m;n=2"]) as server:
        out = run_benchmark([ModelSpec(model="m;n=2", backend="openai", endpoint=server.base_url)],
                            parse_prompts(["a"]), Settings(rounds=1, warmup=0, max_tokens=4), sys_root=root,
                            progress=Warms(tmp_path / "sys/class/thermal/thermal_zone0/temp"))
    run = db.get_run(out.run_id)
    assert run["environment"]["power"] == {"source": "battery", "battery_percent": 55, "governor": "powersave",
                                           "thermal_c": {"x86_pkg_temp": 51.0}, "sources": SYSFS}
    assert run["environment_end"]["thermal_c"] == {"x86_pkg_temp": 63.0}
