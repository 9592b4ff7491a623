"""What pages share and that is Streamlit: the deep-link guard every page calls first (`router_guard`),
the Campaigns section of the Benchmark page (`campaigns_view`). Logic stays in core/."""
