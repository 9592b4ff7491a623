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

_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test installs it)")
expect, PlaywrightTimeout = _api.expect, _api.TimeoutError
expect.set_options(timeout=60_000)    # what expect(...) waits unless told (Playwright's own default is 5 s)

pytestmark = pytest.mark.models

SMALLEST = "SmolLM2 135M Instruct (int4)"   # display name of the smallest starter model
DECISION = "pilot pick"
NOTES = "Chosen for the <pilot> with the sales team."


# ------------------------------------------------------------------ helpers (what a person does, and waits for)
# Never a fixed pause followed by a read: every step waits for what the next one needs (Playwright's auto-waiting
# expect, or a condition in the page), and each wait says what it waited for, so a failure names what never came.

IDLE_JS = ("() => { const a = document.querySelector('[data-testid=stApp]');"
           " return !!a && a.getAttribute('data-test-script-state') === 'notRunning'"
           " && !document.querySelector('[data-stale=\"true\"]'); }")
# counts the script runs that end after it is installed (the attribute's old value 'running' when it changes)
WATCH_JS = ("() => { const a = document.querySelector('[data-testid=stApp]'); window.__slmRuns = 0;"
            " if (window.__slmObs) window.__slmObs.disconnect();"
            " window.__slmObs = new MutationObserver(ms => { for (const m of ms) if (m.oldValue === 'running')"
            " window.__slmRuns++; });"
            " window.__slmObs.observe(a, {attributes: true, attributeOldValue: true,"
            " attributeFilter: ['data-test-script-state']}); }")
RAN_JS = "() => window.__slmRuns > 0 && (" + IDLE_JS + ")()"


def wait_until(page, js: str, what: str, timeout: int = 60_000) -> None:
    try:
        page.wait_for_function(js, timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"never happened within {timeout / 1000:.0f} s: {what}") from None


def idle(page, what: str, timeout: int = 60_000) -> None:
    """The app's script is not running and nothing on the page is stale (left from before a rerun)."""
    wait_until(page, IDLE_JS, f"the app idle ({what})", timeout)


def rerun(page, action, what: str, timeout: int = 60_000) -> None:
    """Do `action` and wait until the script run it causes has ended: a watcher counts runs that end after it
    is installed, so a rerun that has not started yet is waited for rather than taken for done."""
    page.evaluate(WATCH_JS)
    action()
    wait_until(page, RAN_JS, f"the rerun after {what} to finish", timeout)


def see(where, text, what: str | None = None, timeout: int = 60_000) -> None:
    """Wait until `where` shows `text` (a string or a pattern)."""
    expect(where, f"never appeared: {what or text}").to_contain_text(text, timeout=timeout)


def main(page):
    return page.locator("[data-testid=stMain]")


def title(page):
    return main(page).locator("h1").first


def goto(page, server, path: str, heading: str) -> None:
    page.goto(f"{server['url']}/{path}")
    expect(title(page), f"/{path}: its title {heading!r} never appeared").to_have_text(heading, timeout=90_000)
    idle(page, f"/{path} drawn")
    # a URL that is no page opens Streamlit's "Page not found" dialog over the home page
    expect(page.get_by_text("Page not found"), f"/{path} is not a page").to_have_count(0)


def shot(page, name: str, *, width: int = 1400) -> None:
    """The whole page (Streamlit scrolls inside its main area, so the window is made as tall as the content)."""
    idle(page, f"before screenshot {name}")
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=stMain]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": width, "height": max(950, min(int(height) + 40, 6000))})
    idle(page, f"after resizing for screenshot {name}")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # laid out
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1400, "height": 950})


def widget(page, testid: str, label: str):
    return main(page).locator(f"[data-testid={testid}]:visible").filter(has_text=label).first


def choose(page, testid: str, label: str, option: str | re.Pattern) -> str:
    """Open a selectbox / multiselect by its label, click an option, wait until the widget shows it and the
    rerun it caused has ended; the option's text."""
    box = widget(page, testid, label)
    box.click()
    opt = page.get_by_role("option", name=option).first
    expect(opt, f"option {option!r} of {label!r}").to_be_visible()
    text = opt.inner_text().strip()
    # a selectbox shows its choice as the value of its combobox input, a multiselect as tags (text)
    shown = (lambda: box.locator("input").input_value()) if testid == "stSelectbox" else box.inner_text
    # no rerun comes when it is chosen already, or for a form's widget (until the form is submitted)
    if " ".join(text.split()) in " ".join(shown().split()) or in_form(box):
        opt.click()
        idle(page, f"{text!r} chosen in {label!r}")
    else:
        rerun(page, opt.click, f"choosing {text!r} in {label!r}")
    if testid == "stSelectbox":
        spaced = re.compile(r"\s+".join(map(re.escape, text.split())))     # the page spaces it its own way
        expect(box.locator("input"), f"{text!r} chosen in {label!r}").to_have_value(spaced, timeout=30_000)
    else:
        see(box, text, f"{text!r} chosen in {label!r}", timeout=30_000)
    return text


def in_form(locator) -> bool:
    return locator.locator("xpath=ancestor::*[@data-testid='stForm']").count() > 0


def set_number(page, label: str, value) -> None:
    """Type a number and press Enter; wait for the rerun it causes (the caller waits for what it changes)."""
    box = widget(page, "stNumberInput", label).locator("input")
    expect(box, f"the number box {label!r}").to_be_editable()
    current = box.input_value().strip()
    box.fill(str(value))
    if (current and float(current) == float(value)) or in_form(box):   # no rerun comes: same value, or in a form
        box.press("Enter")
        return
    rerun(page, lambda: box.press("Enter"), f"setting {label!r} to {value}")


def sidebar_nav(page):
    return page.locator("[data-testid=stSidebarNav]")


# ------------------------------------------------------------------ the walk

def test_deep_link_is_the_first_request(page, server):
    goto(page, server, "decision", "Decision")   # the very first request this server gets
    see(sidebar_nav(page), "Score by hand", "the page titles in the sidebar")
    nav = sidebar_nav(page).inner_text()
    assert "Overview" in nav and "scoring" not in nav  # titles, not file names
    shot(page, "01-decision-deep-link")
    goto(page, server, "models", "Models")


def test_overview_is_home(page, server):
    goto(page, server, "", "SLM Selector")
    for text in ("no run yet", "Next step", "starter models ready"):
        see(main(page), text, f"{text!r} on the empty Overview")
    shot(page, "02-overview-empty")


def test_try_a_prompt(page, server):
    goto(page, server, "models", "Models")
    choose(page, "stSelectbox", "Model", re.compile(r"smollm2.*int4", re.I))
    main(page).get_by_role("button", name="Run").click()
    see(main(page), "Time to first token", "the answer's time to first token", timeout=120_000)
    see(main(page), "Decode tokens/s", "the answer's decode speed")
    shot(page, "03-models-try-prompt")


def test_tiny_benchmark(page, server):
    goto(page, server, "benchmark", "Benchmark")
    for model in (r"smollm2-135m-instruct-int4.*foundry", r"smollm2-135m-instruct-fp32.*foundry"):
        choose(page, "stMultiSelect", "Models", re.compile(model, re.I))
        page.keyboard.press("Escape")
    choose(page, "stSelectbox", "Shipped set", "workshop_deterministic")
    set_number(page, "Rounds", 1)
    set_number(page, "Max tokens", 16)
    start = main(page).get_by_role("button", name="Start")
    expect(start, "the Start button enabled (models, prompt set and settings chosen)").to_be_enabled()
    start.click()
    # the run's own line: every request done, then the results of the run just ended
    see(main(page), re.compile(r"Run \S+: completed · (\d+)/\1 requests"), "the run completed with every request",
        timeout=240_000)
    expect(main(page).get_by_role("combobox", name="Run", exact=True),
           "the finished run chosen under Results").to_have_value(re.compile(r"\S+\s+·\s+completed\s+·"))
    progress = main(page).locator("[data-testid=stProgress]")
    expect(progress, "one progress line per model").to_have_count(2)
    for line in progress.all_inner_texts():
        assert "failed" not in line, line
    shot(page, "04-benchmark")


def test_blind_scoring(page, server):
    goto(page, server, "scoring", "Score by hand")
    choose(page, "stSelectbox", "Rubric", "workshop_deterministic")
    box = widget(page, "stTextInput", "Your name").locator("input")
    box.fill("Ada")
    rerun(page, lambda: box.press("Enter"), "typing the rater's name")
    form = main(page).locator("[data-testid=stForm]").first
    expect(form, "the scoring form").to_be_visible()
    see(main(page), "Model names stay hidden", "the blind-scoring note")
    inputs = form.locator("input[type=number]")
    expect(inputs, "8 score boxes: 2 candidates x 4 criteria").to_have_count(8)
    shot(page, "05-scoring")
    n = inputs.count()
    for i in range(n):  # candidate A gets 4s, candidate B 2s
        inputs.nth(i).fill("4" if i < n // 2 else "2")
        inputs.nth(i).press("Tab")
    form.get_by_role("button", name="Save and next").click()
    see(main(page), "1 of 3 prompts scored", "the saved scores counted", timeout=30_000)


def test_judge_run(page, server):
    """A judge run from the page. With the starter models as judge a judgement takes minutes (strict JSON,
    up to 3 attempts), so the walk starts the run, sees its progress, cancels it and checks that the page tells
    honestly what was judged (cancel keeps what was judged)."""
    goto(page, server, "quality", "Quality")
    choose(page, "stSelectbox", "Rubric", "workshop_deterministic")
    choose(page, "stSelectbox", "Judge model", re.compile(r"smollm2-135m-instruct-int4", re.I))
    see(main(page), "6 judge calls (one per output)", "the judge's planned calls")
    main(page).get_by_role("button", name="Run judge").click()
    see(main(page), re.compile(r"\d+ of 6: "), "the judge run's progress")
    shot(page, "06-quality-judge-running")
    cancel = main(page).get_by_role("button", name="Cancel judge run")
    expect(cancel, "the Cancel judge run button").to_be_enabled()
    cancel.click()
    # the outcome in one line, never a green "done" for a cancelled run (core.quality.views.judge_result_message)
    see(main(page), re.compile(r"Judge run \S+ interrupted[^:]*(: \d+ of \d+ judgements parsed, \d+ failed"
                               r"| before any judgement)"), "the cancelled judge run reported as interrupted",
        timeout=180_000)
    shot(page, "06-quality-judge")


def test_overview_counts_the_work(page, server):
    goto(page, server, "", "SLM Selector")     # the home page lives at the root URL
    for text in ("1 run(s), 1 completed", "2 output(s) scored by hand (1 rater(s))", "0 of 1 judge run(s) completed",
                 "judge calibration"):
        see(main(page), text, f"{text!r} on the Overview")
    shot(page, "07-overview")


def test_decision_with_a_constraint_save_and_export(page, server, tmp_path):
    goto(page, server, "decision", "Decision")
    see(main(page), f"Recommendation: {SMALLEST}", "the recommendation, by display name")
    see(main(page), re.compile(r"(Clear winner|Likely|Too close to call)"), "how sure the recommendation is")
    # a constraint: at most 300 MB on disk (the fp32 model is about 630 MB); the matrix shows the reason
    set_number(page, "Max disk (MB)", 300)
    see(main(page), "violates disk_mb<=300", "the matrix with the fp32 model failing disk_mb<=300")
    see(main(page), "Save the decision to export it", "the note that an unsaved decision has no export")
    assert "disk_mb" in main(page).inner_text()
    expect(main(page).locator("[data-testid=stDownloadButton]"), "no export of an unsaved decision").to_have_count(0)
    shot(page, "08-decision")
    form = main(page).locator("[data-testid=stForm]").first
    widget(page, "stTextInput", "Decision name").locator("input").fill(DECISION)
    widget(page, "stTextArea", "Notes of the team").locator("textarea").fill(NOTES)
    form.get_by_role("button", name="Save decision").click()
    see(main(page), f"Saved '{DECISION}'", "the saved decision's confirmation")
    buttons = main(page).locator("[data-testid=stDownloadButton]")
    for label, ext in (("Markdown", "md"), ("HTML (offline)", "html"), ("CSV", "csv"), ("JSON", "json")):
        button = buttons.get_by_role("button", name=label, exact=True)
        expect(button, f"the {label} export button").to_be_enabled()
        with page.expect_download(timeout=30_000) as info:
            button.click()
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
    goto(page, server, f"present?decision={DECISION.replace(' ', '%20')}", DECISION)   # the saved decision
    see(main(page), f"Recommendation: {SMALLEST}", "the recommendation")
    for row in ("Latency", "Decode speed", "Peak memory", "Quality", "Disk", "License"):
        see(main(page), row, f"the {row} row")
    see(main(page), "Next best (not ranked): SmolLM2 135M Instruct (fp32)", "the runner-up, not ranked")
    see(main(page), NOTES, "the team's notes")
    text = main(page).inner_text()
    assert "disk_mb<=300" in text and re.search(r"(Clear winner|Likely|Too close to call)", text)
    controls = ",".join(f"[data-testid={t}]" for t in ("stButton", "stSlider", "stNumberInput", "stTextInput",
                                                         "stSelectbox", "stMultiSelect", "stCheckbox"))
    expect(main(page).locator(controls), "no controls on the page itself: a page to show").to_have_count(0)
    shot(page, "10-present")
    # printable: the browser's own PDF of the page (print CSS: no sidebar, no toolbar) fits one or two A4 pages
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4", print_background=True)
    page.emulate_media(media="screen")
    (SCREENSHOTS / "10-present.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 1 <= pages <= 2, f"the printed Present page has {pages} pages"
    page.goto(f"{server['url']}/present?decision=nothing%20like%20this")
    see(main(page), "no saved decision named 'nothing like this'", "the error for an unknown decision name")
    idle(page, "the unknown decision's page drawn")
    assert "Recommendation" not in main(page).inner_text()
