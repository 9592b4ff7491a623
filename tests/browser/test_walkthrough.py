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
from tests.browser.walk import choose, expect, goto, idle, main, rerun, see, set_number, shot, sidebar_nav, widget

pytestmark = pytest.mark.models

SMALLEST = "SmolLM2 135M Instruct (int4)"   # display name of the smallest starter model
DECISION = "pilot pick"
NOTES = "Chosen for the <pilot> with the sales team."


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
    # the smallest model comes preselected (a quick first run); the walk adds the fp32 one beside it
    see(widget(page, "stMultiSelect", "Models"), re.compile(r"smollm2-135m-instruct-int4", re.I),
        "the smallest model preselected")
    choose(page, "stMultiSelect", "Models", re.compile(r"smollm2-135m-instruct-fp32.*foundry", re.I))
    page.keyboard.press("Escape")
    choose(page, "stSelectbox", "Shipped set", "workshop_deterministic")
    set_number(page, "Rounds", 1)
    set_number(page, "Max tokens", 16)
    start = main(page).get_by_role("button", name="Start", exact=True)
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
