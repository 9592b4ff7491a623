"""SLM Selector: the router. Every page is registered here with st.navigation (which replaces pages/ auto-discovery)."""

import streamlit as st

from core.config import db_path

st.set_page_config(page_title="SLM Selector", page_icon=":material/balance:", layout="wide")

# (file, title, icon, url path): every page has its own URL, so a deep link works as the first request
PAGES = {
    "Start": [
        ("pages/overview.py", "Overview", ":material/home:", "overview"),
    ],
    "Candidates": [
        ("pages/models.py", "Models", ":material/view_list:", "models"),
    ],
    "Measure": [
        ("pages/benchmark.py", "Benchmark", ":material/speed:", "benchmark"),
        ("pages/quality.py", "Quality", ":material/rule:", "quality"),
        ("pages/scoring.py", "Score by hand", ":material/rate_review:", "scoring"),
    ],
    "Decide": [
        ("pages/decision.py", "Decision", ":material/balance:", "decision"),
        ("pages/present.py", "Present", ":material/slideshow:", "present"),
    ],
}
HOME = "pages/overview.py"

page = st.navigation({
    section: [st.Page(path, title=title, icon=icon, url_path=url, default=path == HOME)
              for path, title, icon, url in pages]
    for section, pages in PAGES.items()
})

with st.sidebar:
    st.caption("Database")
    st.code(str(db_path()), language=None, wrap_lines=True)

page.run()
