"""The run + rubric picker the Quality and Score-by-hand pages share: a run (newest first, with its outputs and
status), then a rubric whose default is the one made for the run's prompt set (again whenever another run is
picked), and a one-line warning when the chosen rubric was not made for it."""
import streamlit as st

from core.output import md_text
from core.quality import rubrics, views

NO_RUN = "No benchmark run yet: run one on the Benchmark page (or `python -m core bench`), then score it here."


def run_label(run: dict) -> str:
    return (f"{run['run_id']} · {str(run['created_at'])[:16]} · {run['prompt_set'] or 'unknown'} · "
            f"{run['ok_requests']} outputs · {run['status']}")


def pick_run_and_rubric(key: str, run_col, rubric_col) -> tuple[str | None, str | None]:
    """(run id, rubric name), chosen in the selectboxes `key + "run"` (in `run_col`) and `key + "rubric"` (in
    `rubric_col`). (None, None) with a note when no run is stored; (run id, None) when no rubric is."""
    runs = views.run_choices()
    if not runs:
        st.info(NO_RUN)
        return None, None
    labels = {r["run_id"]: run_label(r) for r in runs}
    run_id = run_col.selectbox("Run", list(labels), format_func=labels.get, key=key + "run")
    names = rubrics.list_rubrics()
    if not names:
        return run_id, None
    run = next((r for r in runs if r["run_id"] == run_id), None)
    _, made_for = views.default_rubric(run, names)
    if st.session_state.get(key + "rubric_run") != run_id:   # another run: its own rubric is the default again
        st.session_state[key + "rubric_run"] = run_id
        st.session_state.pop(key + "rubric", None)
    rubric = rubric_col.selectbox("Rubric", names, index=names.index(made_for) if made_for else 0,
                                  key=key + "rubric")
    warn = views.rubric_mismatch(run, rubric, names)
    if warn:
        st.warning(md_text(warn), icon="⚠️")
    return run_id, rubric
