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
    _endpoints_confirm(row["name"], row["version"])


def _endpoints_confirm(name: str, version: int) -> None:
    """The plan's endpoints this machine has not accepted, and the confirm that accepts them (no key goes there)."""
    from core.bench.campaign import accept_pending, pending_endpoints
    plan = campaigns.get_campaign(name, version)["plan"]
    pending = pending_endpoints(plan)
    if not pending:
        return
    st.warning(md_text(f"This plan sends requests to endpoints this machine has not accepted: {', '.join(pending)}. "
                       "`campaign run` sends nothing there until they are accepted; no key is ever sent to them "
                       "(a key goes only to an endpoint added with its variable on the Models page)."))
    if st.button("Accept these endpoints on this machine", key=f"bench_campaign_accept_{name}_{version}"):
        accepted = accept_pending(plan)
        st.success(md_text(f"Accepted on this machine, without a key: {', '.join(accepted)}"))
