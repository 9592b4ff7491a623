"""What pages share and that is Streamlit: the deep-link guard every page calls first (`router_guard`),
the Campaigns section of the Benchmark page (`campaigns_view`), settling dead runs before a page reads runs
(`stale_runs`). Logic stays in core/."""
