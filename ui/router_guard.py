"""Deep links as the first request after the server starts.

Streamlit decides once per process whether the app uses the old `pages/` folder auto-discovery: it does while
no script has called st.navigation yet and a `pages/` folder sits next to app.py (ours does: the layout fixes the
name). So the very first request for /decision ran pages/decision.py alone, with raw file names in the sidebar.
Every page calls `use_router()` first: in that case it turns auto-discovery off and reruns, so app.py routes.
Once per session at most (a rerun drops a button click; streamlit.testing resets the switch before every run).
"""
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def use_router() -> None:
    if PagesManager.uses_pages_directory and not st.session_state.get("_router_guard_done"):
        st.session_state["_router_guard_done"] = True
        PagesManager.uses_pages_directory = False
        st.rerun()
