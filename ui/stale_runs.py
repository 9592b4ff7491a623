"""Before a page reads runs: runs whose process is gone become 'interrupted' (their journals imported).

The store's reads (`list_runs`, `get_run`, `candidate_inputs`) never write; this is the app's explicit step,
called by the router (app.py) before every page, as the CLI router does before a command. At most once every
few seconds per session: a rerun per widget click need not query the store again.
"""
import time

import streamlit as st

from core.config import db_path
from core.errors import UserError

EVERY_S = 5.0


def mark_stale_runs() -> None:
    store, now = str(db_path()), time.monotonic()
    last = st.session_state.get("_stale_runs_marked")
    if last is not None and last[0] == store and now - last[1] < EVERY_S:
        return
    from core.store.bench import mark_stale_runs as mark
    try:
        mark()
    except UserError:       # a store that cannot be opened: the page's own read says so in one line
        return
    st.session_state["_stale_runs_marked"] = (store, now)
