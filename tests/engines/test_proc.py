"""The process and machine meters through psutil (Linux, Windows, macOS), each figure with its source; the
Linux-only files still read where a test lays them out."""
import collections
import os
import subprocess
import sys
import time

from core.bench.conditions import noise
from core.engines import proc


def test_a_process_reads_rss_peak_and_cpu_through_psutil():
    child = subprocess.Popen([sys.executable, "-c",
                              "b = bytearray(64 * 2**20); del b\nimport time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.3: pass\ntime.sleep(30)"])
    try:
        deadline = time.time() + 20
        st = proc.process_stats(child.pid)
        while st["cpu_s"] < 0.3 and time.time() < deadline:
            time.sleep(0.1)
            st = proc.process_stats(child.pid)
        assert st["cpu_s"] >= 0.3 and st["rss_mb"] > 1
        # the 64 MB it held and let go: gone from RSS, kept in the peak (VmHWM on Linux)
        assert st["peak_rss_mb"] >= 64 > st["rss_mb"]
        assert st["source"] == {"rss_mb": "psutil", "cpu_s": "psutil",
                                "peak_rss_mb": "VmHWM" if sys.platform == "linux" else st["source"]["peak_rss_mb"]}
        mem = proc.memory_mb(child.pid)
        assert proc.alive(child.pid) and mem["VmHWM"] >= 64 and mem["VmRSS"] > 1
    finally:
        child.kill()
        child.wait()
    assert not proc.alive(child.pid) and proc.process_stats(child.pid) is None and proc.cpu_s(child.pid) is None
    assert proc.memory_mb(child.pid) == {} and not proc.alive(None)


def test_the_peak_is_windows_peak_working_set_where_psutil_gives_one():
    """Windows' branch: psutil's memory_info there carries peak_wset (a Windows process cannot run here, so
    its memory_info is built as psutil returns it on Windows)."""
    pmem = collections.namedtuple("pmem", "rss vms peak_wset")
    assert proc.peak_mb(pmem(10 * 2**20, 0, 96 * 2**20), os.getpid()) == (96.0, "peak_wset")
    bare = collections.namedtuple("pmem", "rss vms")      # macOS: no peak for a process
    assert proc.peak_mb(bare(1, 0), 999_999_999) == (None, None)


def test_the_machine_meters_on_the_real_machine_come_from_psutil():
    cpu = noise.read_cpu_times()
    assert cpu["source"] == "psutil" and cpu["busy_s"] > 0 and cpu["cpus"] == os.cpu_count()
    if sys.platform == "linux":
        assert cpu["steal_s"] is not None           # steal: Linux has it, psutil gives it there
    assert abs(noise.read_process_cpu_s(os.getpid()) - proc.cpu_s(os.getpid())) < 0.5
    assert noise.read_load_1m() is not None and noise.read_load_1m() >= 0
    w = noise.NoiseMeter(sample_s=0.05)
    window = w.start([os.getpid()])
    t = time.process_time()
    while time.process_time() - t < 0.2:
        pass
    out = w.stop(window)
    assert out["own_cpu_s"] >= 0.15 and out["source"]["cpu_times"] == "psutil" and out["source"]["load"] == "psutil"
    level = noise.level_noise([out])
    assert level["source"] == out["source"] and level["others_share"] is not None


def test_without_steal_the_share_is_unknown_never_zero():
    """macOS and Windows have no steal time: the window's steal is None and the level's steal share unknown."""
    base = {"wall_s": 2.0, "own_cpu_s": 0.1, "others_cpu_s": 0.2, "steal_s": None, "cpus": 2, "freq_start_mhz": None,
            "freq_mhz": [], "load_avg_1m": 1.0}
    level = noise.level_noise([base])
    assert level["steal_share"] is None and level["others_share"] == 0.05
