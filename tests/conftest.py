"""What the whole suite shares: Hypothesis profiles, the xdist load groups and the session fixtures.

Hypothesis: two profiles. ``ci`` (loaded when ``CI`` is set; ``make test`` sets ``CI=true``) is derandomized
with a fixed budget and no example database, so two runs on any two machines try the same examples; ``dev``
(the default) explores more and keeps what it found in ``.hypothesis/``. A failing example found while
exploring is pinned with ``@example(...)`` on the test, so CI tries it on every run. ``HYPOTHESIS_PROFILE``
picks one explicitly. Tests set only what is theirs (deadline, health checks); a slow one takes a share of the
profile's budget (``settings.default.max_examples // 3``), never a number of its own.

Parallel runs (``pytest -n 2 --dist loadgroup``, what ``make test`` does when pytest-xdist is installed): the
tests that share one heavy thing run on one worker, in order, each group once:
``postgres`` (one PostgreSQL server), ``browser`` (one Streamlit server and one Chromium), ``models`` (the
real starter models: the Foundry Local runtime's catalog and loads on this machine); every other test goes with
its module, so a module-scoped fixture is made once, not once per worker.

Session fixtures (real parts, started once per worker): ``postgres_server``, ``template_db`` (a migrated DuckDB
file) with ``fresh_db`` (its copy per test, as ``SLM_DB``), ``openai_server`` (one OpenAI-compatible test
server; behaviour chosen by model name, see tests/support/openai_server.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# -- Hypothesis -------------------------------------------------------------------------------------
settings.register_profile("ci", derandomize=True, max_examples=50, deadline=None, database=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if CI else "dev")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    return f"hypothesis profile: {PROFILE} ({settings.get_profile(PROFILE)})"


# -- xdist load groups ------------------------------------------------------------------------------
POSTGRES_FIXTURES = {"pg", "postgres_server"}
BROWSER_DIRS = ("tests/browser/",)


def group_of(item) -> str:
    """The load group of a test: the heavy shared thing it needs, else its module (so that a module-scoped
    fixture, a store built once or a benchmark run once, is made on one worker only, not on each)."""
    path = Path(str(item.fspath)).as_posix()
    if any(d in path for d in BROWSER_DIRS):
        return "browser"
    if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "postgres"
    if item.get_closest_marker("models") is not None:
        return "models"
    return item.nodeid.split("::", 1)[0]


def pytest_itemcollected(item):
    """Marked as each test is collected: xdist reads the marker in its own pytest_collection_modifyitems on each
    worker (it suffixes the node id with the group), which runs before a conftest's, tryfirst or not."""
    if item.get_closest_marker("xdist_group") is None:
        item.add_marker(pytest.mark.xdist_group(group_of(item)))


# -- session fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL 15 server (run as the postgres user) for every team-store test of this worker."""
    from tests.support import postgres
    if not postgres.available():
        pytest.skip("PostgreSQL 15 is not installed (make test / .ci/run install it)")
    with postgres.PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """A DuckDB file with every migration applied, made once per worker; copy it, never write to it."""
    from tests.support.store import make_template
    return make_template(tmp_path_factory.mktemp("template") / "template.duckdb")


@pytest.fixture()
def fresh_db(template_db, tmp_path, monkeypatch) -> Path:
    """An empty, migrated store of this test's own (a copy of the template), named by SLM_DB."""
    from tests.support.store import copy_template
    path = copy_template(template_db, tmp_path / "store.duckdb")
    monkeypatch.setenv("SLM_DB", str(path))
    return path


@pytest.fixture(scope="session")
def openai_server():
    """One OpenAI-compatible test server on 127.0.0.1: each request behaves as its model name says
    (``"name;ttft=0.05;tok=0.01;n=32"``). Its log is shared: filter it by model name, never count all of it."""
    from tests.support.openai_server import OpenAITestServer
    with OpenAITestServer(models=["tiny"]) as server:
        yield server


@pytest.fixture(autouse=True)
def _environment_restored():
    """Each test's environment is its own: `main([... "--db", X])` in process sets SLM_DB as the command line
    does, and a test that forgot monkeypatch must not move the next test to its store."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)

