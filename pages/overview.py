"""Overview (home): the pipeline models -> benchmark -> quality -> decision, what exists at each step, the next step."""
from __future__ import annotations

import streamlit as st

from ui.router_guard import use_router

from core.decision.overview import pipeline
from core.errors import UserError
from core.output import md_text

use_router()  # a deep link as the first request: let app.py route (see ui/router_guard.py)

PAGE_FILES = {"models": "pages/models.py", "benchmark": "pages/benchmark.py", "quality": "pages/quality.py",
              "scoring": "pages/scoring.py", "decision": "pages/decision.py", "present": "pages/present.py"}


def render_steps(state: dict) -> None:
    cols = st.columns(len(state["steps"]))
    for i, (col, step) in enumerate(zip(cols, state["steps"])):
        with col.container(border=True):
            st.markdown("**" + md_text(f"{i + 1}. {step['name']}") + "**" + (" :material/check_circle:" if step["done"]
                                                                else " :material/radio_button_unchecked:"))
            st.text(step["status"])
            st.page_link(PAGE_FILES[step["page"]], label=f"Open {step['name']}", icon=":material/arrow_forward:")


def render_next(state: dict) -> None:
    sentence, page = state["next"]
    st.subheader("Next step")
    st.markdown(md_text(sentence))
    st.page_link(PAGE_FILES[page], label="Go there", icon=":material/arrow_forward:")


def main() -> None:
    st.title("SLM Selector")
    st.caption("Pick a small language model with evidence: candidates, a benchmark on this machine, quality "
               "scores, then a weighted decision the team can present.")
    try:
        state = pipeline()
    except UserError as exc:
        st.error(md_text(exc.one_line()))
        return
    render_steps(state)
    render_next(state)


main()
