"""Score by hand: blind, side by side, one prompt at a time; resume; reveal; annotation CSV."""
from __future__ import annotations

import streamlit as st

from ui.router_guard import use_router
from ui.run_rubric import pick_run_and_rubric

from core.errors import UserError
from core.output import display_frame, md_text
from core.quality import blind, rubrics, views

use_router()  # a deep link as the first request: let app.py route (see ui/router_guard.py)

K = "scoring_"  # session-state namespace


def render_setup() -> tuple[str, str, str] | None:
    rubrics.ensure_default_rubrics()
    a, b, c = st.columns(3)
    run_id, rubric = pick_run_and_rubric(K, a, b)
    if run_id is None:
        return None
    if rubric is None:
        st.info("No rubric stored: import one on the Quality page.")
        return None
    rater = c.text_input("Your name (rater)", key=K + "rater", max_chars=64)
    if not rater.strip():
        st.info("Enter your name to start: your scores and the blind order are kept per rater.")
        return None
    return run_id, rubric, rater


def _current_index(session: blind.BlindSession) -> int:
    ident = (session.run_id, session.rubric, session.rater)
    if st.session_state.get(K + "ident") != ident:  # a new rater/run: resume where they left off
        st.session_state[K + "ident"] = ident
        st.session_state[K + "idx"] = session.resume_index()
    idx = st.session_state.get(K + "idx", 0)
    return min(max(idx, 0), max(session.total - 1, 0))


def _go(idx: int) -> None:
    st.session_state[K + "idx"] = idx


def render_progress(session: blind.BlindSession, idx: int) -> None:
    done, total = session.done_count, session.total
    st.progress(done / total if total else 0.0, text=f"{done} of {total} prompts scored")
    a, b, c, d = st.columns([1, 1, 1, 3])
    a.button("Previous", disabled=idx <= 0, on_click=_go, args=(idx - 1,), key=K + "prev")
    b.button("Next", disabled=idx >= total - 1, on_click=_go, args=(idx + 1,), key=K + "next")
    c.button("First unscored", on_click=_go, args=(session.resume_index(),), key=K + "resume",
             disabled=session.complete)
    d.caption(f"Prompt {idx + 1} of {total}")


def render_prompt(session: blind.BlindSession, idx: int, revealed: bool) -> None:
    rubric = rubrics.get_rubric(session.rubric)
    p = session.prompts[idx]
    st.text(f"Prompt {p.prompt_id}")  # ids come from prompt files: plain text
    st.code(p.prompt_text, language=None, wrap_lines=True, height=160)
    cols = st.columns(len(p.candidates))
    for col, cand in zip(cols, p.candidates):
        with col:
            st.markdown(f"**Candidate {cand.slot}**")
            if revealed:
                st.text(cand.model)
            st.code(cand.output_text or "(empty output)", language=None, wrap_lines=True, height=320)
            if getattr(cand, "cut", ""):
                st.caption(f"✂ {md_text(cand.cut)}: the answer stopped at the token limit, not where the model ended it")
    with st.expander("Criteria", expanded=False):
        st.dataframe(display_frame(views.rubric_criteria_rows(rubric)), hide_index=True)
    form_key = f"{K}form_{session.run_id}_{p.prompt_id}_{session.rater}"
    with st.form(form_key, enter_to_submit=True):
        st.caption("Score every criterion for every candidate; Enter in any field saves and moves on.")
        cols = st.columns(len(p.candidates))
        values: dict[str, tuple[dict, str]] = {}
        for col, cand in zip(cols, p.candidates):
            with col:
                st.markdown(f"**{cand.slot}**")
                sc = {}
                for c in rubric.criteria:
                    saved = cand.scores.get(c.name)
                    sc[c.name] = st.number_input(
                        f"{c.name} ({c.scale_min}-{c.scale_max})", min_value=c.scale_min, max_value=c.scale_max,
                        step=1, value=int(saved) if saved is not None else None, placeholder="score",
                        key=f"{form_key}_{cand.slot}_{c.name}", help=md_text(c.description))
                comment = st.text_input("Comment", value=cand.comment, key=f"{form_key}_{cand.slot}_comment")
                values[cand.request_id] = (sc, comment)
        submitted = st.form_submit_button("Save and next", type="primary")
    if submitted:
        try:
            blind.save_prompt_scores(session.run_id, session.rubric, session.rater, values)
        except UserError as exc:
            st.error(md_text(exc.one_line()))
            return
        for cand in p.candidates:   # what was saved, in memory: no reload of every score before the rerun
            cand.scores = dict(values[cand.request_id][0])
        nxt = session.resume_index() if not session.complete else idx
        _go(nxt)
        st.rerun()


def render_reveal(session: blind.BlindSession) -> bool:
    if not session.complete:
        st.caption("Model names stay hidden until you have scored every prompt.")
        return False
    revealed = st.toggle("Reveal the models", key=K + "reveal")
    if revealed:
        st.dataframe(display_frame(views.reveal_rows(session)), hide_index=True)
    return revealed


def render_files(session: blind.BlindSession) -> None:
    with st.expander("Score offline: annotation file (CSV)"):
        st.download_button("Download the annotation file", blind.export_annotations(session.run_id, session.rubric,
                                                                                      session.rater),
                           file_name=f"annotations_{session.run_id}_{session.rubric}_{session.rater}.csv",
                           mime="text/csv", key=K + "download")
        up = st.file_uploader(f"Import a filled annotation file as rater {md_text(session.rater)}", type=["csv"],
                              key=K + "upload")
        if up is not None and st.button("Import scores", key=K + "import"):
            try:
                res = blind.import_annotations(up.getvalue(), rater=session.rater, expect_run=session.run_id,
                                               expect_rubric=session.rubric)
                st.success(f"Imported {res['rows']} scored outputs for {md_text(res['rater'])} "
                           f"({res['skipped']} left blank).")
            except UserError as exc:
                st.error(f"Nothing imported: {md_text(exc.one_line())}")


def render_effort(session: blind.BlindSession, priority: list[dict]) -> None:
    """Why the prompts come in this order, and how many scored prompts would settle the quality verdict."""
    from core.quality.paired import DEFAULT_DELTA, run_paired

    if any(r["priority"] > 0 for r in priority):
        st.caption("Prompts come in the order that settles the decision fastest: where the candidates differ most "
                   "by the automatic rater, or where raters disagree.")
    for p in run_paired(session.run_id, rubric=session.rubric):
        need = p.get("prompts_needed")
        if need:
            st.caption(md_text(f"{p['sentence']}. At the current spread, {need} scored prompts ("
                               f"{max(0, need - p['n'])} more) would detect a difference of {DEFAULT_DELTA:g} on "
                               "the 0..1 quality scale."))


def main() -> None:
    st.title("Score by hand")
    st.caption("Blind: the candidates of each prompt are shown as A, B, ... in an order shuffled per prompt and rater.")
    try:
        setup = render_setup()
        if setup is None:
            return
        from core.quality.paired import scoring_priority
        priority = scoring_priority(*setup)
        session = blind.blind_session(*setup, order=[r["prompt_id"] for r in priority])
        render_effort(session, priority)
        if not session.total:
            st.info("This run has no successful outputs to score.")
            return
        idx = _current_index(session)
        render_progress(session, idx)
        revealed = render_reveal(session)
        render_prompt(session, idx, revealed)
        render_files(session)
    except UserError as exc:
        st.error(md_text(exc.one_line()))


main()
