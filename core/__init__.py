"""SLM Selector core: all logic, no Streamlit."""
