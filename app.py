"""SLM Selector: the router. Pages are registered here (auto-discovery of pages/ never runs)."""
from pathlib import Path

import streamlit as st

from core.config import db_path

st.set_page_config(page_title="SLM Selector", page_icon=":material/balance:", layout="wide")

HERE = Path(__file__).parent
PAGES = {
    "Candidates": [
        ("pages/models.py", "Models", ":material/view_list:"),
    ],
    "Measure": [
        ("pages/benchmark.py", "Benchmark", ":material/speed:"),
        ("pages/quality.py", "Quality", ":material/rule:"),
        ("pages/scoring.py", "Score by hand", ":material/rate_review:"),
    ],
    "Decide": [
        ("pages/decision.py", "Decision", ":material/balance:"),
        ("pages/present.py", "Present", ":material/slideshow:"),
    ],
}

nav = {
    section: [st.Page(path, title=title, icon=icon) for path, title, icon in pages if (HERE / path).exists()]
    for section, pages in PAGES.items()
}
page = st.navigation({k: v for k, v in nav.items() if v})

with st.sidebar:
    st.caption("Database")
    st.code(str(db_path()), language=None)

page.run()
