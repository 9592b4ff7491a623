"""The noise meter: exact arithmetic on a directory laid out like /proc and /sys, then real runs on this
machine with two CPU hogs beside them (flagged noisy, the hogs' CPU attributed to other programs)."""
import contextlib
import os
import subprocess
import sys
import time

import pytest

from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.conditions.noise import NoiseMeter, level_noise, read_process_cpu_s
from core.bench.run.runner import run_benchmark
from core.store import bench as db
from tests.support.store import migrated

TICK = os.sysconf("SC_CLK_TCK")
MODEL = "n;ttft=0.05;tok=0.005;n=16"


def write_stat(root, user, system, idle, steal, cpus=2):
    lines = [f"cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0"] + [f"cpu{i} 0 0 0 0 0 0 0 0 0 0" for i in range(cpus)]
    (root / "stat").write_text("\n".join(lines) + "\nintr 0\n")


def write_pid(root, pid, utime, stime):
    (root / str(pid)).mkdir(exist_ok=True)
    (root / str(pid) / "stat").write_text(f"{pid} (a (weird) name) S 1 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1\n")


def write_freq(root, mhz):
    for i in range(2):
        d = root / f"devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True, exist_ok=True)
        (d / "scaling_cur_freq").write_text(str(int(mhz * 1000)))


def test_others_are_the_machine_minus_the_measured_processes(tmp_path):
    proc, sysfs = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    sysfs.mkdir()
    (proc / "loadavg").write_text("1.50 1.00 0.50 2/300 4000\n")
    write_stat(proc, 1000, 500, 9000, 10)
    write_pid(proc, 41, 100, 50)
    write_pid(proc, 42, 10, 0)
    write_freq(sysfs, 3000)
    meter = NoiseMeter(proc_root=str(proc), sys_root=str(sysfs), sample_s=0.02)
    w = meter.start([41, 42])
    # over the window: the machine used 3 s (300 ticks), the model 1 s, the app 0.5 s; steal 0.2 s
    write_stat(proc, 1000 + 2 * TICK, 500 + TICK, 9100, 10 + TICK // 5)
    write_pid(proc, 41, 100 + TICK, 50)
    write_pid(proc, 42, 10 + TICK // 2, 0)
    write_freq(sysfs, 2400)
    time.sleep(0.15)
    out = meter.stop(w)
    assert out["others_cpu_s"] == pytest.approx(1.5) and out["steal_s"] == pytest.approx(0.2)
    assert out["own_cpu_s"] == pytest.approx(1.5) and out["cpus"] == 2 and out["load_avg_1m"] == 1.5
    assert out["freq_start_mhz"] == 3000 and min(out["freq_mhz"]) == 2400
    lvl = level_noise([dict(out, wall_s=10.0)])
    assert lvl["others_cores"] == pytest.approx(0.15) and lvl["others_share"] == pytest.approx(0.075)
    assert lvl["freq_drop"] == pytest.approx(0.2) and lvl["noisy"] and "CPU frequency fell 20%" in lvl["reason"]
    assert "other programs" not in lvl["reason"]     # 7.5% of the machine: under the 10% line
    lvl = level_noise([dict(out, wall_s=5.0, freq_mhz=[3000, 2900])])
    assert lvl["noisy"] and lvl["reason"].startswith("measured while other programs used 0.3 cores")
    assert level_noise([dict(out, wall_s=20.0, freq_mhz=[3000])])["noisy"] is False
    unknown_server = level_noise([dict(out, wall_s=5.0, freq_mhz=[3000])], model_process_known=False)
    assert "the model server's process is unknown" in unknown_server["reason"]
    unknown = NoiseMeter(proc_root=str(tmp_path / "none"), sys_root=str(tmp_path / "none"))
    res = level_noise([unknown.stop(unknown.start([1]))])
    assert res["noisy"] is None and res["freq_start_mhz"] is None   # nothing readable: unknown, not quiet


@pytest.fixture(scope="module")
def server(openai_server):
    """The suite's one OpenAI test server (tests/conftest.py): these model names carry their timings."""
    return openai_server


@pytest.fixture(autouse=True)
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "run.duckdb")))


HOG = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"


@pytest.fixture()
def hogs():
    """Two programs that are not ours: started through a launcher that exits at once, so they are nobody's
    children here (the meter rightly counts this process's own children, a model worker say, as the app's)."""
    import psutil
    launch = ("import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', sys.argv[1]], "
              "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")
    procs = [psutil.Process(int(subprocess.check_output([sys.executable, "-c", launch, HOG], text=True)))
             for _ in range(2)]
    assert not {p.pid for p in procs} & {c.pid for c in psutil.Process().children(recursive=True)}
    time.sleep(0.3)
    yield procs
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


def bench(server):
    specs = [ModelSpec(model=MODEL, backend="openai", endpoint=server.base_url)]
    return run_benchmark(specs, parse_prompts(["a", "b", "c"]), Settings(rounds=4, warmup=1, max_tokens=16),
                         energy_baseline_s=0)


def test_a_run_beside_two_cpu_hogs_is_flagged_noisy_with_their_share(server, hogs):
    before = [read_process_cpu_s(p.pid) for p in hogs]
    t0 = time.perf_counter()
    out = bench(server)
    hog_cores = sum(read_process_cpu_s(p.pid) - b for p, b in zip(hogs, before)) / (time.perf_counter() - t0)
    (m,) = db.get_run(out.run_id)["models"]
    noise = m["noise"]
    print(f"hogs used {hog_cores:.2f} cores; the meter saw others use {noise['others_cores']:.2f}: {noise['reason']}")
    assert m["noisy"] is True and noise["reason"].startswith("measured while other programs used")
    assert hog_cores > 0.05 and noise["others_cores"] >= 0.8 * hog_cores   # the hogs are inside "others"
    (res,) = db.run_summary(out.run_id)
    assert res["noisy"] is True and res["noise"]["reason"] == noise["reason"]


def test_a_quiet_run_is_not_noisy(server):
    # the machine is shared: measure what others use with nothing of ours running; too busy -> no verdict
    meter = NoiseMeter()
    w = meter.start([os.getpid()])
    time.sleep(1.5)
    base = level_noise([meter.stop(w)])
    if base["others_share"] is None or base["others_share"] > 0.05:
        pytest.skip(f"this machine is busy without us (others used {base['others_share']}); no quiet run here")
    out = bench(server)
    (m,) = db.get_run(out.run_id)["models"]
    print("quiet run noise:", m["noise"])
    assert m["noisy"] is False and m["noise"]["others_share"] <= 0.10
    # the app's own work (client and in-process server) is not "others": it used real CPU in the window
    assert m["observer_cpu_s"] > 0
