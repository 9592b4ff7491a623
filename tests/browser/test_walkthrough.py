"""The whole job in Chromium, as a new user does it, on the starter models: deep links, try a prompt, a tiny
benchmark, blind scoring, a judge run, a decision with a constraint, save, export, present.

The tests run in order on one server and one browser page (each step uses what the previous one made).
A screenshot of every page goes to tests/browser/screenshots/ (git-ignored).
"""
from __future__ import annotations

import json
import re

import pytest

from tests.browser.conftest import SCREENSHOTS

pytestmark = pytest.mark.models

SMALLEST = "SmolLM2 135M Instruct (int4)"   # display name of the smallest starter model
DECISION = "pilot pick"
NOTES = "Chosen for the <pilot> with the sales team."


# ------------------------------------------------------------------ helpers (what a person does)

def settle(page, wait_ms: int = 300) -> None:
    """Wait until the app's script has finished its run."""
    page.wait_for_timeout(wait_ms)
    page.wait_for_function("() => { const a = document.querySelector('[data-testid=stApp]');"
                           " return a && a.getAttribute('data-test-script-state') !== 'running'; }")


def goto(page, server, path: str) -> None:
    page.goto(f"{server['url']}/{path}")
    page.wait_for_selector("[data-testid=stMain] h1")
    settle(page)
    # a URL that is no page opens Streamlit's "Page not found" dialog over the home page
    assert page.get_by_text("Page not found").count() == 0, f"/{path} is not a page"


def shot(page, name: str, *, width: int = 1400) -> None:
    """The whole page (Streamlit scrolls inside its main area, so the window is made as tall as the content)."""
    settle(page, 500)
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": width, "height": max(950, min(int(height) + 40, 6000))})
    settle(page, 700)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 950})


def main(page):
    return page.locator("[data-testid=stMain]")


def widget(page, testid: str, label: str):
    return main(page).locator(f"[data-testid={testid}]:visible").filter(has_text=label).first


def choose(page, testid: str, label: str, option: str | re.Pattern) -> None:
    """Open a selectbox / multiselect by its label and click an option."""
    widget(page, testid, label).click()
    page.get_by_role("option", name=option).first.click()
    settle(page)


def set_number(page, label: str, value) -> None:
    box = widget(page, "stNumberInput", label).locator("input")
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def sidebar_nav(page) -> str:
    return page.locator("[data-testid=stSidebarNav]").inner_text()


# ------------------------------------------------------------------ the walk

def test_deep_link_is_the_first_request(page, server):
    goto(page, server, "decision")   # the very first request this server gets
    assert main(page).locator("h1").first.inner_text() == "Decision"
    nav = sidebar_nav(page)
    assert "Overview" in nav and "Score by hand" in nav and "scoring" not in nav  # titles, not file names
    shot(page, "01-decision-deep-link")
    goto(page, server, "models")
    assert "Page not found" not in page.content()
    assert main(page).locator("h1").first.inner_text() == "Models"


def test_overview_is_home(page, server):
    goto(page, server, "")
    assert main(page).locator("h1").first.inner_text() == "SLM Selector"
    text = main(page).inner_text()
    assert "no run yet" in text and "Next step" in text and "starter models ready" in text
    shot(page, "02-overview-empty")


def test_try_a_prompt(page, server):
    goto(page, server, "models")
    choose(page, "stSelectbox", "Model", re.compile(r"smollm2.*int4", re.I))
    main(page).get_by_role("button", name="Run").click()
    main(page).get_by_text("Time to first token").wait_for(timeout=120_000)
    settle(page)
    assert "Decode tokens/s" in main(page).inner_text()
    shot(page, "03-models-try-prompt")


def test_tiny_benchmark(page, server):
    goto(page, server, "benchmark")
    for model in (r"smollm2-135m-instruct-int4.*foundry", r"smollm2-135m-instruct-fp32.*foundry"):
        choose(page, "stMultiSelect", "Models", re.compile(model, re.I))
        page.keyboard.press("Escape")
    choose(page, "stSelectbox", "Shipped set", "workshop_deterministic")
    set_number(page, "Rounds", 1)
    set_number(page, "Max tokens", 16)
    main(page).get_by_role("button", name="Start").click()
    main(page).get_by_text("Results").first.wait_for(timeout=180_000)
    page.get_by_text(re.compile(r"Run \S+: completed")).first.wait_for(timeout=180_000)
    settle(page, 1000)
    text = main(page).inner_text()
    assert "failed" not in text.split("Results")[0].lower() or "0 failed" in text
    shot(page, "04-benchmark")


def test_blind_scoring(page, server):
    goto(page, server, "scoring")
    choose(page, "stSelectbox", "Rubric", "workshop_deterministic")
    box = widget(page, "stTextInput", "Your name").locator("input")
    box.fill("Ada")
    box.press("Enter")
    settle(page)
    form = main(page).locator("[data-testid=stForm]").first
    form.wait_for()
    assert "Model names stay hidden" in main(page).inner_text()
    shot(page, "05-scoring")
    inputs = form.locator("input[type=number]")
    n = inputs.count()
    assert n == 8  # 2 candidates x 4 criteria
    for i in range(n):  # candidate A gets 4s, candidate B 2s
        inputs.nth(i).fill("4" if i < n // 2 else "2")
        inputs.nth(i).press("Tab")
    form.get_by_role("button", name="Save and next").click()
    main(page).get_by_text("1 of 3 prompts scored").wait_for(timeout=30_000)


def test_judge_run(page, server):
    """A judge run from the page. With the starter models as judge a judgement takes minutes (strict JSON,
    up to 3 attempts), so the walk starts the run, sees its progress, cancels it and checks that the page tells
    honestly what was judged (cancel keeps what was judged)."""
    goto(page, server, "quality")
    choose(page, "stSelectbox", "Rubric", "workshop_deterministic")
    choose(page, "stSelectbox", "Judge model", re.compile(r"smollm2-135m-instruct-int4", re.I))
    assert "6 judge calls (one per output)" in main(page).inner_text()
    main(page).get_by_role("button", name="Run judge").click()
    main(page).get_by_text(re.compile(r"\d+ of 6: ")).first.wait_for(timeout=60_000)  # its progress
    shot(page, "06-quality-judge-running")
    main(page).get_by_role("button", name="Cancel judge run").click()
    # the outcome in one line, never a green "done" for a cancelled run (core.quality.views.judge_result_message)
    done = main(page).get_by_text(re.compile(r"Judge run \S+ interrupted[^:]*(: \d+ of \d+ judgements parsed, \d+ failed"
                                             r"| before any judgement)"))
    done.wait_for(timeout=180_000)
    settle(page, 500)
    shot(page, "06-quality-judge")


def test_overview_counts_the_work(page, server):
    goto(page, server, "")     # the home page lives at the root URL
    text = main(page).inner_text()
    assert "1 run(s), 1 completed" in text and "2 output(s) scored by hand (1 rater(s))" in text
    assert "0 of 1 judge run(s) completed" in text and "judge calibration" in text
    shot(page, "07-overview")


def test_decision_with_a_constraint_save_and_export(page, server, tmp_path):
    goto(page, server, "decision")
    text = main(page).inner_text()
    assert "Recommendation: " in text and SMALLEST in text           # display names, not ids
    assert re.search(r"(Clear winner|Likely|Too close to call)", text)
    # a constraint: at most 300 MB on disk (the fp32 model is about 630 MB)
    set_number(page, "Max disk (MB)", 300)
    text = main(page).inner_text()
    assert "disk_mb" in text and "violates disk_mb<=300" in text     # the reason, in the table
    assert "Save the decision to export it" in text                 # no export of an unsaved decision
    assert not main(page).locator("[data-testid=stDownloadButton]").count()
    shot(page, "08-decision")
    form = main(page).locator("[data-testid=stForm]").first
    widget(page, "stTextInput", "Decision name").locator("input").fill(DECISION)
    widget(page, "stTextArea", "Notes of the team").locator("textarea").fill(NOTES)
    form.get_by_role("button", name="Save decision").click()
    main(page).get_by_text(f"Saved '{DECISION}'").wait_for()
    settle(page)
    for label, ext in (("Markdown", "md"), ("HTML (offline)", "html"), ("CSV", "csv"), ("JSON", "json")):
        with page.expect_download(timeout=30_000) as info:
            main(page).locator("[data-testid=stDownloadButton]").get_by_role("button", name=label, exact=True).click()
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        assert path.suffix == "." + ext and path.stat().st_size > 100, (label, path)
        body = path.read_text(encoding="utf-8")
        if ext == "json":
            doc = json.loads(body)
            assert doc["name"] == DECISION and doc["notes"] == NOTES and "disk_mb<=300" in json.dumps(doc)
            assert doc["created_at"]
        elif ext == "csv":
            assert SMALLEST in body and "violates disk_mb<=300" in body
        else:
            shown = SMALLEST.replace("(", "\\(").replace(")", "\\)") if ext == "md" else SMALLEST  # md escapes
            assert DECISION in body and shown in body and "Saved " in body
            assert ("&lt;pilot&gt;" if ext == "html" else "pilot") in body
    shot(page, "09-decision-saved")


def test_present(page, server):
    goto(page, server, f"present?decision={DECISION.replace(' ', '%20')}")
    text = main(page).inner_text()
    assert main(page).locator("h1").first.inner_text() == DECISION
    assert f"Recommendation: {SMALLEST}" in text
    for row in ("Latency", "Decode speed", "Peak memory", "Quality", "Disk", "License"):
        assert row in text
    assert "Next best (not ranked): SmolLM2 135M Instruct (fp32)" in text and "disk_mb<=300" in text and NOTES in text
    assert re.search(r"(Clear winner|Likely|Too close to call)", text)
    controls = ",".join(f"[data-testid={t}]" for t in ("stButton", "stSlider", "stNumberInput", "stTextInput",
                                                         "stSelectbox", "stMultiSelect", "stCheckbox"))
    assert not main(page).locator(controls).count()   # no controls on the page itself: a page to show
    shot(page, "10-present")
    # printable: the browser's own PDF of the page (print CSS: no sidebar, no toolbar) fits one or two A4 pages
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4", print_background=True)
    page.emulate_media(media="screen")
    (SCREENSHOTS / "10-present.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 2, f"the printed Present page has {pages} pages"
    goto(page, server, "present?decision=nothing%20like%20this")
    assert "no saved decision named 'nothing like this'" in main(page).inner_text()
    assert "Recommendation" not in main(page).inner_text()
