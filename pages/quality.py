"""Quality: rubrics (edit, import, export), the LLM judge, and how far to trust it."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from ui.router_guard import use_router
from ui.run_rubric import pick_run_and_rubric

from core.config import db_path
from core.errors import UserError
from core.output import display_frame, md_text
from core.jobs import Job
from core.quality import judge, rubrics, scorers, scores, views

use_router()  # a deep link as the first request: let app.py route (see ui/router_guard.py)

K = "quality_"  # session-state namespace


@st.cache_data(ttl=60, show_spinner="Listing models...")
def _models(db: str) -> list[dict]:
    from core.catalog.models import list_models

    result = list_models(include_catalog=False, timeout=2.0)
    return [m for m in result.models if m.get("backend") in ("foundry", "llamacpp", "openai")]


def _table(rows: list[dict], **kwargs) -> None:
    if rows:   # before scoring many cells are empty: "no data", never "None"
        st.dataframe(display_frame(rows, missing="no data"), hide_index=True, **kwargs)
    else:
        st.caption("Nothing yet.")


def render_rubrics() -> None:
    st.subheader("Rubrics")
    rubrics.ensure_default_rubrics()
    names = rubrics.list_rubrics()
    if not names:
        st.info("No rubric stored: import one below.")
    else:
        name = st.selectbox("Rubric", names, key=K + "rubric_edit")
        rub = rubrics.get_rubric(name)
        doc = rub.as_json()
        st.text(rub.description or "")
        st.download_button("Export as JSON", json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                           file_name=f"{rub.name}.json", mime="application/json", key=K + "export")
        with st.form(K + "edit_form"):
            desc = st.text_input("Description", value=rub.description, key=K + "desc_" + name)
            crit = st.data_editor(pd.DataFrame(views.rubric_criteria_rows(rub)), num_rows="dynamic",
                                  hide_index=True, key=K + "crit_" + name)
            rest = st.text_area("Per-prompt expectations and automatic checks (JSON)", height=240,
                                value=json.dumps({"checks": doc["checks"], "prompts": doc["prompts"]}, indent=2,
                                                 ensure_ascii=False), key=K + "rest_" + name)
            if st.form_submit_button("Save rubric"):
                try:
                    new = views.rubric_from_edit(doc, rub.name, desc, crit.to_dict("records"), rest)
                    rubrics.import_rubric(new)
                    st.success(f"Saved rubric {md_text(rub.name)}.")
                except UserError as exc:
                    st.error(md_text(exc.one_line()))
    up = st.file_uploader("Import a rubric (JSON)", type=["json"], key=K + "upload")
    if up is not None and st.button("Import", key=K + "import"):
        try:
            rub = rubrics.parse_rubric_text(up.getvalue(), up.name)
            rubrics.import_rubric(rub)
            st.success(f"Imported rubric {md_text(rub.name)}: {len(rub.criteria)} criteria, {len(rub.prompts)} prompts.")
        except UnicodeDecodeError:
            st.error(f"{md_text(up.name)}: not UTF-8 text")
        except UserError as exc:
            st.error(md_text(exc.one_line()))


def render_run_picker() -> tuple[str | None, str | None]:
    a, b = st.columns(2)
    return pick_run_and_rubric(K, a, b)


def _judge_choice() -> judge.JudgeModel | None:
    where = st.radio("Judge", ["A model from the list", "An endpoint URL"], horizontal=True, key=K + "judge_where")
    if where == "An endpoint URL":
        a, b, c = st.columns(3)
        url = a.text_input("Base URL", placeholder="http://127.0.0.1:8080/v1", key=K + "judge_url")
        model = b.text_input("Model", key=K + "judge_model_name")
        key_env = c.text_input("API key env var (name only)", key=K + "judge_key_env")
        if not url or not model:
            return None
        return judge.JudgeModel(model, "openai", url.rstrip("/"), key_env or None)
    models = _models(str(db_path()))
    if not models:
        st.caption("No model found: build the starter models or add an endpoint on the Models page.")
        return None
    labels = {i: f"{m.get('alias') or m['id']} · {m['backend']}" for i, m in enumerate(models)}
    i = st.selectbox("Judge model", list(labels), format_func=labels.get, key=K + "judge_pick",
                     index=views.default_judge_index(models))
    m = models[i]
    if m["backend"] == "openai":
        return judge.JudgeModel(m["id"], "openai", m.get("endpoint"), m.get("api_key_env"))
    if m["backend"] == "llamacpp":
        return judge.JudgeModel(m.get("path") or m["id"], "llamacpp")
    return judge.JudgeModel(m["id"], "foundry")


def render_judge(run_id: str, rubric: str) -> None:
    st.subheader("Judge")
    st.caption(f"Template {judge.POINTWISE_VERSION} / {judge.PAIRWISE_VERSION}, temperature 0, strict JSON with up to "
               f"{judge.DEFAULT_RETRIES} retries; an unparseable answer is kept as a failed judgement. Decoding is "
               "constrained to the reply object on every engine (llama.cpp: JSON schema; Foundry Local: a grammar; "
               "endpoints: json_schema), so any local model can give a parseable judgement, e.g. the starters "
               "smollm2-135m-instruct-gguf (llama.cpp) or smollm2-135m-instruct-int4 (Foundry Local). Whether "
               "it is a good judge is what the agreement with people below says.")
    jm = _judge_choice()
    pairwise = st.checkbox("Pairwise (each pair in both orders)", key=K + "pairwise")
    if jm is None:
        return
    from core.quality.outputs import run_outputs

    outs = run_outputs(run_id)
    for w in judge.same_family_warnings(jm.model, sorted({o["model_id"] for o in outs})):
        st.warning(md_text(w))
    n = len(outs)
    pairs = 0
    if pairwise:
        per = {}
        for o in outs:
            per[o["prompt_id"]] = per.get(o["prompt_id"], 0) + 1
        pairs = sum(k * (k - 1) // 2 for k in per.values())
    st.caption(f"{pairs * 2} judge calls ({pairs} pairs x 2 orders)" if pairwise else f"{n} judge calls (one per output)")
    kind, msg = st.session_state.pop(K + "judge_msg", (None, None))
    if msg:
        {"error": st.error, "warning": st.warning, "success": st.success}.get(kind, st.warning)(md_text(msg))
    job = st.session_state.get(K + "job")
    if job is None and st.button("Run judge", type="primary", key=K + "run_judge"):
        st.session_state[K + "job"] = Job(judge.run_judge, run_id=run_id, rubric_name=rubric, judge=jm,
                                          pairwise=pairwise).start()
        st.rerun()
    if st.session_state.get(K + "job") is not None:
        render_judge_progress()


@st.fragment(run_every=1.0)
def render_judge_progress() -> None:
    job = st.session_state.get(K + "job")
    if job is None:
        return
    snap = job.snapshot()
    if snap["running"]:
        total = snap["total"] or 1
        st.progress(snap["done"] / total, text=f"{snap['done']} of {snap['total']}: {md_text(snap['what'])}")
        if st.button("Cancel judge run", key=K + "cancel_judge", disabled=snap["cancelling"]):
            job.cancel()
        return
    del st.session_state[K + "job"]
    if snap["error"]:
        st.session_state[K + "judge_msg"] = ("error", snap["error"])
        st.rerun()
    st.session_state[K + "judge_msg"] = views.judge_result_message(snap["result"])
    st.rerun()  # the whole page, so the results below show the new judgements


def render_results(run_id: str, rubric: str) -> None:
    st.subheader("Scores and trust")
    prefer = st.radio("Where people and the judge both scored an output, use", ["human", "judge"], horizontal=True,
                      index=["human", "judge"].index(scores.get_prefer()), key=K + "prefer",
                      format_func={"human": "people's scores", "judge": "the judge's scores"}.get)
    if prefer != scores.get_prefer():
        scores.set_prefer(prefer)
    jruns = [j for j in views.judge_runs(run_id) if j["rubric"] == rubric]
    pointwise = [j for j in jruns if j["mode"] == "pointwise"]
    jr_id = None
    health = {}
    if pointwise:
        health = {j["judge_run_id"]: views.judge_run_health(j) for j in pointwise}
        labels = {j["judge_run_id"]: views.judge_run_label(j, health[j["judge_run_id"]]) for j in pointwise}
        ids = list(labels)
        from core.quality.calibration import stored_gate
        default = views.default_judge_run(pointwise, health, scores.best_rater_id(run_id, rubric, stored_gate()))
        # The choice is kept by value (Streamlit keeps a selectbox's index, which a new judge run shifts); a newer
        # judge run with parsed judgements (or another run/rubric) becomes the choice.
        chosen = st.session_state.get(K + "jrun")
        if st.session_state.get(K + "jrun_default") != ids[default] or chosen not in ids:
            st.session_state[K + "jrun_default"] = chosen = ids[default]
        st.session_state[K + "jrun"] = chosen
        jr_id = st.selectbox("Judge run (scores)", ids, format_func=labels.get, key=K + "jrun")
        notice = views.judge_run_notice(health[jr_id])
        if notice:
            {"error": st.error, "warning": st.warning}.get(notice[0], st.info)(md_text(notice[1]))
        for w in next(j for j in pointwise if j["judge_run_id"] == jr_id)["warnings"]:
            st.warning(md_text(w))
    from core.quality.calibration import Gate, judge_calibration, save_gate, stored_gate
    g1, g2 = st.columns(2)
    # the gate is kept in the store's settings: the Decision page and `decide` (runs and devices) use it too
    stored = stored_gate()
    gate = Gate(g1.number_input("Trust gate: min kappa with people", -1.0, 1.0, float(stored.min_kappa), 0.05,
                                key=K + "gate_k", help="Also used by the Decision page and `decide`."),
                int(g2.number_input("Trust gate: min co-scored outputs", 1, 10_000, int(stored.min_outputs), 1,
                                    key=K + "gate_n", help="Also used by the Decision page and `decide`.")))
    save_gate(gate)
    report = scores.quality_report(run_id, prefer=prefer, rubric=rubric, judge_run_id=jr_id, gate=gate)
    if report.get("gate") and not report["gate"]["trusted"]:
        st.warning(f"Judge unverified: {md_text(report['gate']['reason'])}. Quality uses people's scores where they exist; "
                   "the rest is marked unverified.")
    st.markdown("**Quality per model** (0..1, weighted mean over criteria, bootstrap 95% interval, n outputs; "
                "source: people, else the best rater, a verified one first)")
    _table(views.quality_rows(report))
    from core.quality.paired import paired_verdicts
    for p in paired_verdicts(report):
        st.text(p["sentence"])
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Judge scores** (rationale and raw answer as plain text)")
        _table(views.judgement_rows(jr_id, run_id) if jr_id else [])
    with right:
        st.markdown("**Calibration: judge vs people** (weighted kappa with bootstrap 95% interval, Spearman, "
                    "exact and within-one agreement; alpha among people is the ceiling a judge can reach)")
        if jr_id:
            cal = judge_calibration(run_id, jr_id, gate=gate, boot=500)
            st.caption(md_text(cal["judge"] + (f" · raters: {', '.join(cal['raters'])}" if cal["raters"]
                                               else " · no rater yet")))
            _table(views.calibration_rows(cal))
            with st.expander("Confusion matrix and biggest disagreements"):
                _table(views.confusion_rows(cal["agreement"]["overall"]["confusion"]))
                _table(cal["disagreements"])
            lb, pb = cal["length_bias"], cal["position_bias"]
            bias = [{"bias": "length (Spearman of quality with words), judge", "value": lb["judge"], "n": lb["judge_n"]},
                    {"bias": "length, people (for comparison)", "value": lb["human"], "n": lb["human_n"]}]
            if pb:
                bias.append({"bias": "position (share of pairs whose verdict flips with order)", "value": pb["share"],
                             "n": pb["pairs"]})
            _table(bias)
            for w in cal["self_preference"]:
                st.caption("Self-preference: " + md_text(w))
        st.caption("Few items or empty cells: the judge is not yet checked against people. Score a sample on "
                   "the Score by hand page before trusting it.")
    pairwise = [j for j in jruns if j["mode"] == "pairwise"]
    if pairwise:
        labels = {j["judge_run_id"]: f"{str(j['created_at'])[:16]} · {j['judge_run_id'][:8]} · {j['judge_model']} "
                                     f"({j['judge_backend']}) · {j['status']}" for j in pairwise}
        pw_id = st.selectbox("Pairwise judge run", list(labels), format_func=labels.get, key=K + "pwrun")
        rows = views.pairwise_rows(pw_id)
        summ = views.pairwise_summary(rows)
        st.caption(f"{summ['pairs']} pairs, {summ['inconsistent']} inconsistent (the verdict flipped with the "
                   f"order: position bias), {summ['decided']} decided.")
        _table([{"model": m, "wins": w} for m, w in sorted(summ["wins"].items(), key=lambda x: -x[1])])
        _table(rows)
    if st.button("Run automatic checks and scorers", key=K + "checks",
                 help="No model call: the rubric's checks, and the automatic scorers (coverage by sentence "
                      "embeddings, faithfulness, concision, format) stored as a rater like a judge run."):
        try:
            with st.spinner("Scoring every output..."):
                scorers.check_run(run_id, rubric)
            st.rerun()
        except UserError as exc:
            st.error(md_text(exc.one_line()))
    summary, detail = views.check_rows(run_id, rubric)
    if summary:
        st.markdown("**Automatic checks**")
        _table(summary)
        with st.expander("Each check on each output"):
            _table(detail)


def main() -> None:
    st.title("Quality")
    try:
        with st.expander("Rubrics", expanded=False):
            render_rubrics()
        run_id, rubric = render_run_picker()
        if run_id and rubric:
            render_judge(run_id, rubric)
            render_results(run_id, rubric)
    except UserError as exc:
        st.error(md_text(exc.one_line()))


main()
