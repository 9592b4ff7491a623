"""What pages share and that is Streamlit: the deep-link guard every page calls first (`router_guard`),
the Campaigns section of the Benchmark page (`campaigns_view`), settling dead runs before a page reads runs
(`stale_runs`), the run + rubric picker of the Quality and Score-by-hand pages (`run_rubric`). Logic stays in core/."""
