"""SLM Selector: the router. Every page is registered here with st.navigation (which replaces pages/ auto-discovery)."""

import streamlit as st

from core.config import device_label, set_device_label, store_label
from core.errors import UserError
from core.output import md_text
from ui.stale_runs import mark_stale_runs

st.set_page_config(page_title="SLM Selector", page_icon=":material/balance:", layout="wide")

# (file, title, icon, url path): every page has its own URL, so a deep link works as the first request
PAGES = {
    "Start": [
        ("pages/overview.py", "Overview", ":material/home:", "overview"),   # the default page: served at /
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


def render_loaded() -> None:
    """Models and servers this app keeps loaded (Try a prompt, the judge): listed, unloadable, unloaded when
    idle; they also end with the app."""
    from core.engines import pool
    idle_min = st.number_input("Unload after idle (minutes)", 1, 24 * 60, int(pool.idle_timeout() // 60),
                               key="app_idle_unload_min")
    pool.set_idle_timeout(float(idle_min) * 60)
    rows = pool.loaded_everywhere()
    st.caption(f"Loaded models and servers: {len(rows)}" if rows else "Loaded models and servers: none")
    for i, row in enumerate(rows):
        rss = f"{row['rss_mb']:.0f} MB" if row.get("rss_mb") is not None else "memory unknown"
        st.text(f"{row['id']} ({row['backend']}, {row['kind']}) · pid {row['pid']} · {rss} · "
                f"idle {row['idle_s'] / 60:.0f} min")
        if st.button("Unload", key=f"app_unload_{i}_{row['id']}"):
            pool.unload(row)
            st.rerun()


with st.sidebar:
    st.caption("Database")
    st.code(store_label(), language=None, wrap_lines=True)
    try:
        current = device_label()
    except UserError as exc:   # a bad SLM_DEVICE or saved label: said in one line, a new one can be typed
        current = ""
        st.error(md_text(str(exc)))
    label = st.text_input("This device", value=current, key="app_device", max_chars=80,
                          help="the label runs from this machine are recorded under (saved on this machine only; "
                               "SLM_DEVICE overrides it)")
    if label.strip() and label.strip() != current:
        try:
            set_device_label(label)
        except (OSError, ValueError) as exc:
            st.error(f"device label not saved: {md_text(str(exc))}")
    render_loaded()

mark_stale_runs()     # runs whose process is gone read 'interrupted' on every page (the reads never write)
page.run()
