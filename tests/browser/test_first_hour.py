"""The first hour in Chromium at 1,400 px, from an empty store and the pages' own defaults, as a newcomer does
it: Overview -> Models -> Benchmark (Start, nothing changed) -> Quality (automatic checks) -> Decision
(the meeting summariser preset, save) -> Present.

Every page: a screenshot (tests/browser/screenshots/fh-*.png, git-ignored; look at them), the deciding
columns of its tables inside the table's visible width (no sideways scroll), no "None" in a visible cell,
no path to a file a user does not have. The benchmark from the defaults prints its time against its budget.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.browser.conftest import app_server
from tests.browser.walk import choose, expect, goto, idle, main, see, shot, widget

pytestmark = pytest.mark.models

# The first run from the defaults on the smallest starter model takes well under 120 s on a quiet laptop
# (tests/perf/bench_first_run.py prints it against that budget); the walk waits longer, since a shared test
# machine can be many times slower, and prints what it took.
BENCH_BUDGET_S = 120
BENCH_WAIT_S = 900
SMALLEST = "SmolLM2 135M Instruct (int4)"
DECISION = "first hour"
TIMES: dict[str, float] = {}

# glide-data-grid (st.dataframe) draws on a canvas and keeps, inside it, an accessible table of the columns and
# rows in view (virtualised: a column scrolled off is not in it). When columns are left off, the last one listed
# may be cut at the edge: it does not count as in view.
HEADERS_JS = """(grid) => {
  const t = grid.querySelector('table[role=grid]');
  if (!t) return [];
  const heads = [...t.querySelectorAll('[role=columnheader]')].map(h => h.textContent.trim());
  return heads.length < Number(t.getAttribute('aria-colcount')) ? heads.slice(0, -1) : heads;
}"""
CELLS_JS = "(grid) => [...grid.querySelectorAll('[role=gridcell]')].map(c => c.textContent.trim())"


def grid_with(page, header: str, timeout_s: float = 30.0):
    """The st.dataframe whose columns in view include `header` (the grid fills its accessible table once it
    has drawn: waited for)."""
    grids = main(page).locator("[data-testid=stDataFrame]:visible")
    expect(grids.first, "a table on the page").to_be_visible()
    deadline, seen = time.monotonic() + timeout_s, []
    while True:
        seen = []
        for i in range(grids.count()):
            g = grids.nth(i)
            heads = g.evaluate(HEADERS_JS)
            if header in heads:
                g.scroll_into_view_if_needed()
                return g
            seen.append(heads)
        if time.monotonic() > deadline:
            raise AssertionError(f"no table shows the column {header!r} without a sideways scroll; in view: {seen}")
        page.wait_for_timeout(250)


def assert_in_view(page, columns: list[str]) -> None:
    """Each of `columns` is a heading of one table, inside its visible width (no sideways scroll)."""
    grid = grid_with(page, columns[0])
    shown = grid.evaluate(HEADERS_JS)
    missing = [c for c in columns if c not in shown]
    assert not missing, f"columns off-screen or absent at 1,400 px: {missing}; in view: {shown}"


def assert_clean(page, where: str) -> None:
    """No visible cell reads "None"; no text cites a file a user does not have."""
    text = main(page).inner_text()
    assert "shared/notes" not in text, f"{where} cites shared/notes"
    grids = main(page).locator("[data-testid=stDataFrame]:visible")
    for i in range(grids.count()):
        cells = grids.nth(i).evaluate(CELLS_JS)
        assert "None" not in cells, f"{where}: a table shows None: {cells[:40]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory, sync_api):
    """A server and a store of this walk's own: it starts from an empty store, as the walkthrough does."""
    with app_server(tmp_path_factory.mktemp("first-hour")) as srv:
        yield srv


def test_overview_counts_what_the_models_page_lists(page, server):
    TIMES["start"] = time.monotonic()
    goto(page, server, "", "SLM Selector")
    see(main(page), re.compile(r"\d+ of \d+ starter models ready"), "the starter models counted")
    ready, total = map(int, re.search(r"(\d+) of (\d+) starter models ready", main(page).inner_text()).groups())
    assert ready == total == 4, "three Foundry Local folders and the GGUF for llama.cpp, all built"
    see(main(page), "the smallest model", "the next step: a quick first run")
    assert_clean(page, "Overview")
    shot(page, "fh-01-overview")


def test_models_lead_with_what_decides(page, server):
    goto(page, server, "models", "Models")
    assert_in_view(page, ["name", "parameters", "disk MB", "license", "quantization", "context window", "backend"])
    assert_clean(page, "Models")
    shot(page, "fh-02-models")


def test_first_run_from_the_benchmark_defaults(page, server):
    goto(page, server, "benchmark", "Benchmark")
    see(widget(page, "stMultiSelect", "Models"), re.compile(r"smollm2-135m-instruct-int4", re.I),
        "the smallest model preselected")
    expect(widget(page, "stSelectbox", "Shipped set").locator("input"), "the short set").to_have_value("meeting_notes")
    expect(widget(page, "stNumberInput", "Rounds").locator("input"), "one round").to_have_value("1")
    start = main(page).get_by_role("button", name="Start", exact=True)
    expect(start, "Start enabled by the defaults alone").to_be_enabled()
    t0 = time.monotonic()
    start.click()
    see(main(page), re.compile(r"Run \S+: completed · (\d+)/\1 requests"),
        "the first run from the defaults completed", timeout=BENCH_WAIT_S * 1000)
    TIMES["bench"] = time.monotonic() - t0
    print(f"first run from the defaults: {TIMES['bench']:.1f} s (budget {BENCH_BUDGET_S} s)")
    see(main(page), "Findings", "the findings above the results")
    see(main(page), re.compile(r"smollm2-135m-instruct-int4: TTFT p50 [\d,.]+ ms, decode p50 [\d,.]+ tok/s"),
        "the first finding: the model's figures")
    grid = grid_with(page, "decode speed p50 (tok/s per request)")
    findings, table = main(page).get_by_text("Findings", exact=True).bounding_box(), grid.bounding_box()
    assert findings["y"] < table["y"], "the findings come before the results table"
    assert_in_view(page, ["model", "engine", "decode speed p50 (tok/s per request)", "TTFT p50 (ms)", "E2E p50 (ms)",
                          "peak RSS (MB)", "failed"])
    assert_clean(page, "Benchmark")
    shot(page, "fh-03-benchmark")


def test_automatic_quality_checks(page, server):
    goto(page, server, "quality", "Quality")
    expect(widget(page, "stSelectbox", "Rubric").locator("input"), "the run's own rubric").to_have_value(
        "meeting_notes")
    button = main(page).get_by_role("button", name="Run automatic checks")
    button.click()
    see(main(page), "Automatic checks", "the automatic checks' table", timeout=120_000)
    idle(page, "the checks shown")
    assert_in_view(page, ["passed", "total", "pass_rate", "model"])
    assert_clean(page, "Quality")
    shot(page, "fh-04-quality")


def test_decide_with_the_meeting_summariser_and_save(page, server):
    goto(page, server, "decision", "Decision")
    see(main(page), f"Recommendation: {SMALLEST}", "the recommendation")
    choose(page, "stSelectbox", "Preset", "meeting summariser")
    # its weight as used: rescaled when quality is left out (the automatic checks are no quality score)
    see(main(page), re.compile(r"Time to notes weighs \d+% but is unknown for every candidate"),
        "why time to notes decides nothing after a run without a length sweep")
    assert_in_view(page, ["rank", "candidate", "score", "win %", "Time to notes (ms)", "Peak memory (MB)", "License"])
    assert_clean(page, "Decision")
    shot(page, "fh-05-decision")
    form = main(page).locator("[data-testid=stForm]").first
    widget(page, "stTextInput", "Decision name").locator("input").fill(DECISION)
    form.get_by_role("button", name="Save decision").click()
    see(main(page), f"Saved '{DECISION}'", "the saved decision's confirmation")


def test_present_the_first_decision(page, server):
    goto(page, server, f"present?decision={DECISION.replace(' ', '%20')}", DECISION)
    see(main(page), f"Recommendation: {SMALLEST}", "the recommendation")
    see(main(page), "Time to notes", "the time to notes row")
    assert "None" not in main(page).inner_text().split()
    assert_clean(page, "Present")
    shot(page, "fh-06-present")
    total = time.monotonic() - TIMES["start"]
    print(f"first hour walk: {total:.0f} s in all, of which the benchmark {TIMES.get('bench', 0):.0f} s")
