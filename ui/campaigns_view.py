"""The Campaigns section of the Benchmark page: every campaign version and, for the one picked, the
state of each device. Reads core.store.campaigns only; campaigns are made and run from the command line."""
import streamlit as st

from core.errors import UserError
from core.output import md_text
from core.store import campaigns


def render_campaigns() -> None:
    st.subheader("Campaigns")
    try:
        rows = campaigns.list_campaigns()
    except UserError as exc:
        st.error(md_text(exc.one_line()))
        return
    if not rows:
        st.caption("No campaign yet: `python -m core campaign create NAME --models ... --prompts FILE "
                   "--devices a,b`, then `python -m core campaign run NAME` on each device.")
        return
    picked = st.selectbox("Campaign", [r["display"] for r in rows], key="bench_campaign")
    row = next(r for r in rows if r["display"] == picked)
    try:
        status = campaigns.campaign_status(row["name"], row["version"])
    except UserError as exc:
        st.error(md_text(exc.one_line()))
        return
    st.dataframe([{"device": d["device"], "state": d["state"], "requests": d["requests"], "planned": d["planned"],
                   "failed": d["failed"], "target": d["target"],
                   "skipped": "; ".join(f"{s['model']}: {s['reason']}" for s in d["skipped"])}
                  for d in status["devices"]], hide_index=True)
    if status["missing"]:
        st.warning(md_text(f"Missing devices: {', '.join(status['missing'])}"))
    st.caption(md_text(f"Models: {', '.join(row['models'])}. Each device runs: python -m core campaign run "
                       f"{row['name']}"))
