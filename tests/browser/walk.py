"""What a person does in the app, and waits for: the helpers both browser walks use (Playwright, sync API).

Never a fixed pause followed by a read: every step waits for what the next one needs (Playwright's
auto-waiting expect, or a condition in the page), and each wait says what it waited for, so a failure
names what never came.
"""
from __future__ import annotations

import re

import pytest

from tests.browser.conftest import SCREENSHOTS

_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test installs it)")
expect, PlaywrightTimeout = _api.expect, _api.TimeoutError
expect.set_options(timeout=60_000)    # what expect(...) waits unless told (Playwright's own default is 5 s)


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
    try:
        page.wait_for_function(RAN_JS, timeout=min(timeout, 20_000))
    except PlaywrightTimeout:
        # seen once on a loaded machine: a multiselect's choice with its menu still open ran no script that
        # the watcher saw; the caller checks what the choice shows, so the app being idle is enough here
        idle(page, f"{what} (no rerun seen)", timeout)


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
