"""Present: a saved decision for the meeting. Full width, large type, no controls on the page itself."""
from __future__ import annotations

import streamlit as st

from core.decision import charts, export, record, view
from core.errors import UserError
from core.output import md_text

K = "present_"

# Our own static CSS (no user text in it): larger type for a projector.
_CSS = """<style>
.block-container {max-width: 100% !important; padding-left: 3rem; padding-right: 3rem;}
.stMarkdown p, .stText, .stMarkdown li {font-size: 1.45rem !important; line-height: 1.5;}
h1 {font-size: 3.2rem !important;} h2 {font-size: 2.3rem !important;}
</style>"""


def pick_decision() -> str | None:
    names = record.names()
    if not names:
        return None
    wanted = st.query_params.get("decision")
    if wanted in names:
        return wanted
    with st.sidebar:  # the choice lives in the sidebar; the page itself has no controls
        return st.selectbox("Decision to present", names, key=K + "name")


def render(rec: dict) -> None:
    res = rec["result"]
    st.title(md_text(rec["name"]))
    st.header("Winner: " + (md_text(res["winner"]) if res["winner"] else "none"))
    for line in export.summary_lines(rec):
        st.text(line)
    st.dataframe(view.style_matrix(view.matrix_frame(res)), hide_index=True, width="stretch")
    st.altair_chart(charts.pareto_chart(res), width="content")
    st.altair_chart(charts.win_chart(res), width="content")
    st.altair_chart(charts.score_chart(res), width="content")
    st.header("Notes")
    st.text(rec.get("notes") or "(none)")
    st.caption(md_text(f"Saved {rec.get('created_at')} · runs {', '.join(rec['run_ids'])} · {res['explanation']}"))


def main() -> None:
    st.html(_CSS)  # static CSS only: no user or model text
    try:
        name = pick_decision()
        if name is None:
            st.title("Present")
            st.info("No saved decision yet: save one on the Decision page.")
            return
        render(record.load(name))
    except UserError as exc:
        st.error(md_text(exc.one_line()))


main()
