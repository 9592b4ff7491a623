"""Energy per summary from a directory laid out like sysfs (this machine has no powercap): a RAPL counter
the test advances while a real benchmark runs, its wrap-around, and the estimate where no counter exists."""
import os

import pytest

from core.bench.conditions.energy import RAPL_LABEL, find_source, level_energy, wrapped_delta_uj
from core.bench.run.inputs import ModelSpec, Settings, parse_prompts
from core.bench.run.progress import Progress
from core.bench.run.runner import run_benchmark
from core.store import bench as db
from tests.support.store import migrated

MODEL = "e;ttft=0.01;tok=0.002;n=8"
MAX_UJ = 262_143_328_850


def rapl(root, energy_uj, max_uj=MAX_UJ):
    pkg = root / "class/powercap/intel-rapl:0"
    sub = root / "class/powercap/intel-rapl:0:0"    # the core sub-domain: inside the package, never added
    for d, e in ((pkg, energy_uj), (sub, 5)):
        d.mkdir(parents=True, exist_ok=True)
        (d / "energy_uj").write_text(str(e))
        (d / "max_energy_range_uj").write_text(str(max_uj))
        (d / "name").write_text("package-0" if d == pkg else "core")
    return pkg / "energy_uj"


def test_wrap_around_and_sources(tmp_path):
    assert wrapped_delta_uj(100, 250, 1000) == 150 and wrapped_delta_uj(900, 50, 1000) == 150
    counter = rapl(tmp_path, MAX_UJ - 1_000_000)
    src, why = find_source(str(tmp_path))
    assert why is None and src.label == RAPL_LABEL and len(src.domains) == 1
    j0 = src.read_j()
    counter.write_text(str(2_500_000))          # wrapped: 1 J to the top, then 2.5 J
    assert src.read_j() - j0 == pytest.approx(3.5, abs=1e-9)
    none, why = find_source(str(tmp_path / "nothing"))
    assert none is None and "absent" in why
    counter.chmod(0)
    if not os.access(counter, os.R_OK):         # root reads anything: then this case cannot be caused
        assert "not readable" in find_source(str(tmp_path))[1]


def test_level_energy_subtracts_the_idle_baseline():
    out = level_energy([{"joules": 30.0, "wall_s": 2.0}, {"joules": 20.0, "wall_s": 3.0}], 4.0, cpu_s=9.0,
                       requests=10, tokens=100, source=RAPL_LABEL, why_not=None)
    assert out["joules"] == 30.0 and out["j_per_request"] == 3.0 and out["j_per_token"] == 0.3
    assert out["estimate"] is False and out["source"] == RAPL_LABEL
    est = level_energy([None], None, cpu_s=2.0, requests=4, tokens=40, source=None, why_not="no RAPL", w_per_core=5)
    assert est["joules"] == 10.0 and est["estimate"] is True and est["source"].startswith("estimate:")
    gone = level_energy([None], None, cpu_s=None, requests=4, tokens=40, source=None, why_not="no RAPL")
    assert gone["joules"] is None and "no estimate" in gone["reason"]


@pytest.fixture(scope="module")
def server(openai_server):
    """The suite's one OpenAI test server (tests/conftest.py): these model names carry their timings."""
    return openai_server


@pytest.fixture(autouse=True)
def database(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_DB", str(migrated(tmp_path / "run.duckdb")))


class AdvanceCounter(Progress):
    """Adds STEP_UJ to the counter as each measured request ends (inside the measured window)."""
    STEP_UJ = 1_250_000

    def __init__(self, counter):
        self.counter, self.added, self.seen = counter, 0, 0

    def on_update(self, progress, model):
        if model.done > self.seen:           # a request ended (a phase change is an update too)
            self.seen = model.done
            if model.phase == "running":
                value = int(self.counter.read_text())
                self.counter.write_text(str((value + self.STEP_UJ) % MAX_UJ))
                self.added += 1


def test_energy_per_token_matches_the_counter_deltas_exactly(tmp_path, server):
    counter = rapl(tmp_path / "sys", MAX_UJ - 3_000_000)     # it wraps during the run
    progress = AdvanceCounter(counter)
    spec = ModelSpec(model=MODEL, backend="openai", endpoint=server.base_url)
    out = run_benchmark([spec], parse_prompts(["a", "b"]), Settings(rounds=3, warmup=1, max_tokens=8),
                        progress=progress, sys_root=str(tmp_path / "sys"), energy_baseline_s=0.1)
    (m,) = db.get_run(out.run_id)["models"]
    e = m["energy"]
    assert progress.added == 6 and int(counter.read_text()) < MAX_UJ - 3_000_000   # 6 measured requests, wrapped
    joules = progress.added * AdvanceCounter.STEP_UJ / 1e6
    assert e["idle_w"] == 0.0 and e["joules"] == joules and e["source"] == RAPL_LABEL and e["estimate"] is False
    assert m["energy_j_per_request"] == joules / 6 and m["energy_j_per_token"] == joules / m["output_tokens"]
    assert m["output_tokens"] == 6 * 8 and m["energy_estimate"] is False


def test_without_a_counter_the_estimate_is_labelled(tmp_path, server):
    spec = ModelSpec(model=MODEL, backend="openai", endpoint=server.base_url, server_pid=os.getpid())
    out = run_benchmark([spec], parse_prompts(["a"]), Settings(rounds=2, warmup=0, max_tokens=8),
                        sys_root=str(tmp_path / "empty"))
    (m,) = db.get_run(out.run_id)["models"]
    e = m["energy"]
    assert m["energy_estimate"] is True and e["source"].startswith("estimate: model process CPU")
    assert "no RAPL counter" in e["reason"] and e["joules"] == pytest.approx(m["cpu_s"] * 5.0)
    (res,) = db.run_summary(out.run_id)
    assert res["energy_estimate"] is True and res["energy_j_per_request"] == m["energy_j_per_request"]
    (cond,) = db.run_conditions(out.run_id)
    assert cond["energy_source"] == e["source"] and cond["energy_estimate"] is True and cond["noisy"] is not None
