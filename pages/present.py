"""Present: a saved decision for the meeting. Large type, no controls on the page, printable on 1-2 pages."""
from __future__ import annotations

import streamlit as st

from ui.router_guard import use_router

from core.decision import charts, record, report, view
from core.decision.criteria import UNKNOWN
from core.errors import UserError
from core.output import md_frame, md_text

use_router()  # a deep link as the first request: let app.py route (see ui/router_guard.py)

K = "present_"

# Our own static CSS (no user or model text in it): larger type for a projector; print: no sidebar, no
# header or toolbar, charts and tables kept whole, so the page prints on one or two A4/Letter pages.
_CSS = """<style>
[data-testid="stMain"] .block-container {max-width: 1400px !important; padding-left: 3rem; padding-right: 3rem;}
[data-testid="stMain"] .stMarkdown p, [data-testid="stMain"] .stMarkdown li,
[data-testid="stMain"] [data-testid="stText"] {font-size: 1.5rem !important; line-height: 1.45;}
[data-testid="stMain"] [data-testid="stTable"] table {font-size: 1.35rem !important;}
[data-testid="stMain"] h1 {font-size: 3rem !important;} [data-testid="stMain"] h2 {font-size: 2.2rem !important;}
[data-testid="stMain"] h3 {font-size: 1.7rem !important;}
@media print {
  [data-testid="stSidebar"], [data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stDecoration"],
  [data-testid="stStatusWidget"], header, footer {display: none !important;}
  .block-container {max-width: 100% !important; padding: 0 !important;}
  [data-testid="stMain"] .stMarkdown p, [data-testid="stMain"] .stMarkdown li,
  [data-testid="stMain"] [data-testid="stText"] {font-size: 12pt !important;}
  [data-testid="stMain"] [data-testid="stTable"] table {font-size: 11pt !important;}
  [data-testid="stMain"] h1 {font-size: 22pt !important;} [data-testid="stMain"] h2 {font-size: 16pt !important;}
  [data-testid="stMain"] h3 {font-size: 13pt !important;}
  [data-testid="stVegaLiteChart"], [data-testid="stTable"] {break-inside: avoid;}
  @page {size: A4; margin: 14mm;}
}
</style>"""


def pick_decision() -> str | None:
    """The decision asked for in ?decision=NAME (an unknown name is an error), else the sidebar's choice."""
    names = record.names()
    wanted = st.query_params.get("decision")
    if wanted is not None:
        if wanted not in names:
            raise UserError(f"no saved decision named '{wanted}': check the link, or pick one without ?decision=")
        return wanted
    if not names:
        return None
    with st.sidebar:  # the choice lives in the sidebar; the page itself has no controls
        return st.selectbox("Decision to present", names, key=K + "name")


def render(rec: dict) -> None:
    res = rec["result"]
    st.title(md_text(rec["name"]))
    if res.get("winner"):
        st.header("Recommendation: " + md_text(res.get("winner_label") or res["winner"]))
    st.text(report.verdict(res))
    for line in res.get("findings") or []:   # paired speed comparisons, measured round by round
        st.text(line)
    st.table(md_frame(view.deciding_numbers(res)))   # st.table renders cells and headers as Markdown
    top = next((r for r in res["candidates"] if r["candidate"] == res.get("winner")), None)
    if top is not None:
        wait = report.wait_sentence(top)
        if wait:
            st.subheader(md_text(wait))
        for note in top.get("flags") or []:
            if note.startswith(("noisy:", "energy:", "time to notes:")):
                st.text(note)
        lic = top.get("license_info") or {}
        st.text(f"License: {lic.get('name') or lic.get('id') or UNKNOWN}"
                + {True: " (commercial use allowed)", "conditional": " (commercial use with conditions)"}
                .get(lic.get("commercial_use"), " (commercial use not established)"))
    cons = res.get("constraints") or []
    st.text("Constraints: " + (", ".join(cons) if cons else "none")
            + ("; commercial use required" if res.get("require_commercial") else ""))
    for w in rec.get("warnings") or res.get("warnings") or []:
        st.warning(md_text(w), icon=":material/warning:")
    st.altair_chart(charts.tradeoff_chart(res), width="content")
    st.subheader("Notes of the team")
    st.text(rec.get("notes") or "(none)")
    st.caption(md_text(f"Saved {rec.get('created_at')} · runs {', '.join(rec['run_ids'])}"))


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
        st.title("Present")
        st.error(md_text(exc.one_line()))


main()
