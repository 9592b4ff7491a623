"""Decision: the weighted selection matrix over benchmark runs, how robust the winner is, and the record."""
from __future__ import annotations

import streamlit as st

from ui.router_guard import use_router

from core.config import db_path
from core.decision import charts, export, fleet, record, report, view
from core.decision.criteria import AGGREGATED, CRITERIA
from core.decision.engine import Decision
from core.decision.licenses import known_licenses
from core.decision.matrix import PRESETS, explanation
from core.decision.request import DecisionRequest
from core.errors import UserError
from core.output import display_frame, md_text
from core.store import bench as bench_store
from core.store import devices as dstore

use_router()  # a deep link as the first request: let app.py route (see ui/router_guard.py)

K = "decision_"  # session-state namespace


@st.cache_data(ttl=10, show_spinner=False)
def _runs(db: str) -> list[dict]:
    return [r for r in bench_store.list_runs() if r["candidates"]]


@st.cache_data(ttl=30, show_spinner="Reading the runs...")
def _prepared(db: str, req: DecisionRequest):
    """The request's weight-independent work, cached per request (its gate included: set on the Quality page)."""
    return req.prepare()


@st.cache_data(ttl=10, show_spinner=False)
def _devices(db: str) -> list[str]:
    return dstore.device_names()


def _apply_preset():
    name = st.session_state.get(K + "preset")
    if name in PRESETS:
        for c, v in view.preset_percents(name).items():
            st.session_state[K + "w_" + c] = v


def render_runs() -> list[str]:
    runs = _runs(str(db_path()))
    if not runs:
        st.info("No benchmark run yet: run one on the Benchmark page (or `python -m core bench`), then come back.")
        return []
    labels = {r["run_id"]: f"{str(r['created_at'])[:16]} · {r['prompt_set'] or 'unknown'} · {r['models'] or 'unknown'} "
                           f"({r['run_id']}, {r['status']})" for r in runs}
    chosen = st.multiselect("Runs", list(labels), default=list(labels)[:1], format_func=labels.get, key=K + "runs")
    st.checkbox("Allow mixing runs that differ (prompt set, max tokens, temperature, rounds or device)",
                key=K + "allow_mixed", help="Off: such runs are refused. On: the differences are kept as warnings "
                                            "in the decision and its exports.")
    return chosen


@st.cache_data(ttl=10, show_spinner=False)
def _campaigns(db: str) -> list[str]:
    from core.store.campaigns import list_campaigns
    return list(dict.fromkeys(c["name"] for c in list_campaigns()))


def render_campaign() -> str | None:
    """A campaign to decide over (its latest version); None: choose devices or runs below."""
    names = _campaigns(str(db_path()))
    if not names:
        return None
    return st.selectbox("Campaign (fleet decision over its devices' runs)", [None, *names], key=K + "campaign",
                        format_func=lambda n: "none: choose devices or runs below" if n is None else md_text(n))


def render_devices() -> list[str]:
    """Target devices (the labels runs were recorded under); none chosen: decide over the runs chosen below."""
    names = _devices(str(db_path()))
    if not names:
        return []
    return st.multiselect("Target devices (fleet decision)", names, key=K + "devices",
                          help="Choose devices to decide across them: the latest run of each model on each device "
                               "counts, a constraint must hold on every device. None: decide over the runs below.")


def render_aggregation() -> dict[str, str]:
    st.caption("Fleet decision: the latest run of each model on each chosen device counts; a constraint must hold "
               "on every device (a device without a measurement fails it). Each criterion is taken from the worst "
               "device, or averaged over the devices:")
    return {c.name: col.selectbox(c.name, fleet.AGGREGATIONS, key=K + "agg_" + c.name,
                                  format_func={"worst": "worst device", "mean": "mean of devices"}.get)
            for c, col in zip(AGGREGATED, st.columns(len(AGGREGATED)))}


def render_weights() -> dict | None:
    st.subheader("Weights")
    if K + "w_latency" not in st.session_state:
        st.session_state[K + "preset"] = "balanced"
        _apply_preset()
    st.selectbox("Preset", list(PRESETS), key=K + "preset", on_change=_apply_preset)
    cols = st.columns(len(CRITERIA))
    pct = {c.name: col.slider(c.name, 0, 100, step=5, format="%d%%", key=K + "w_" + c.name,
                              help=md_text(f"{c.heading}: {c.help}; {c.direction}"))
           for c, col in zip(CRITERIA, cols)}
    weights = view.weights_from_percents(pct)
    if weights is None:
        st.warning("All weights are 0: give at least one criterion some weight.")
        return None
    preset = st.session_state.get(K + "preset")
    custom = preset in PRESETS and pct != view.preset_percents(preset)
    st.caption(("Custom weights. " if custom else "") + "Weights in use (normalised to 100%): "
               + ", ".join(f"{c} {100 * w:.0f}%" for c, w in weights.items()))
    return weights


# The limits a user types (0 = none): widget key, label, the constraint it makes, the input's options.
LIMITS = (
    ("max_mem", "Max peak memory (MB), 0 = none", "peak_rss_mb<=", dict(min_value=0, step=100)),
    ("max_lat", "Max p95 latency (ms), 0 = none", "latency_ms<=", dict(min_value=0, step=100)),
    ("min_q", "Min quality (0..1), 0 = none", "quality>=", dict(min_value=0.0, max_value=1.0, step=0.05)),
    ("max_disk", "Max disk (MB), 0 = none", "disk_mb<=", dict(min_value=0, step=100)),
    ("min_ctx", "Min context window (tokens), 0 = none", "context_window>=", dict(min_value=0, step=1000)),
    ("max_notes", "Max time to notes (ms), 0 = none", "time_to_notes_ms<=", dict(min_value=0, step=1000)),
    ("max_energy", "Max energy (J per summary), 0 = none", "energy_j<=", dict(min_value=0.0, step=10.0)),
)


def render_constraints() -> tuple[str, str, list[str], bool]:
    st.subheader("Constraints and options")
    a, b, c = st.columns(3)
    latency_metric = a.radio("Latency", ["e2e_p95", "ttft_p95"], horizontal=True, key=K + "latency",
                             format_func=report.LATENCY_LABEL.get)
    method = b.radio("Normalisation", ["minmax", "rank"], horizontal=True, key=K + "method",
                     format_func={"minmax": "min-max", "rank": "rank"}.get)
    require_commercial = c.checkbox("Commercial use required", key=K + "commercial")
    cons = []
    for col, (key, label, cmp, opts) in zip(st.columns(4) + st.columns(4), LIMITS):
        value = col.number_input(label, key=K + key, **opts)
        if value:
            cons.append(f"{cmp}{value}")
    allowed = st.multiselect("Licenses allowed (empty = any)", [k for k in known_licenses() if k != "unknown"],
                             key=K + "licenses")
    if allowed:
        cons.append("license in " + ",".join(allowed))
    return latency_metric, method, cons, require_commercial


def render_gate(req: DecisionRequest) -> None:
    gate = req.gate()
    st.caption(md_text(f"Judge trust gate (set on the Quality page): kappa >= {gate.min_kappa:g} with people on "
                       f">= {gate.min_outputs} co-scored outputs; below it, quality resting on the judge is marked "
                       "unverified."))


def render_verdict(result: Decision) -> None:
    for w in result.warnings:
        st.warning(md_text(w), icon=":material/warning:")
    for line in view.unmeasured_weights(result):
        st.info(md_text(line), icon=":material/info:")
    if result.winner_label:
        st.subheader("Recommendation: " + md_text(result.winner_label))
    for line in report.summary_lines(result, with_warnings=False):
        st.text(line)


def render_matrix(result: Decision) -> None:
    st.subheader("Matrix")
    st.caption(explanation(result.normalization))
    st.dataframe(view.style_matrix(view.matrix_frame(result)), hide_index=True)
    st.caption(md_text(f"Greyed rows are not ranked (rank '{report.NOT_RANKED}'): a constraint fails or data is "
                       "missing; the reason is in 'why not ranked'."))
    ties = view.ties_lines(result)
    if ties:
        st.markdown("**Too close to call** (the bootstrap 95% interval of the score difference contains 0)")
        for line in ties:
            st.text(line)
    st.markdown("**Flip points**: the weight at which the top choice changes, the other weights rescaled proportionally")
    st.dataframe(display_frame(view.flip_frame(result)), hide_index=True)


def render_fleet(result: Decision) -> None:
    st.subheader("Per device")
    st.caption("Each candidate on each target device: its values there, the criteria that device decided "
               "(worst device), the constraints it decided, and what fails there.")
    st.dataframe(display_frame(view.fleet_frame(result)), hide_index=True)


def render_charts(result: Decision) -> None:
    st.subheader("Charts")
    st.altair_chart(charts.pareto_chart(result), width="content")
    st.altair_chart(charts.score_chart(result), width="content")
    st.altair_chart(charts.win_chart(result), width="content")


def render_save(result: Decision, run_ids: list[str]) -> None:
    st.subheader("Save and export")
    with st.form(K + "save_form", clear_on_submit=False):
        name = st.text_input("Decision name", key=K + "name")
        notes = st.text_area("Notes of the team", key=K + "notes")
        replace = st.checkbox("Replace a saved decision of the same name", key=K + "replace")
        if st.form_submit_button("Save decision"):
            try:
                rec = record.build_record(name, result, run_ids, notes=notes)
                record.save(rec, replace=replace)
                st.session_state[K + "saved"] = rec["name"]
                st.success(f"Saved '{md_text(rec['name'])}'. Show it on the Present page.")
            except UserError as exc:
                st.error(md_text(exc.one_line()))
    render_exports(st.session_state.get(K + "saved"))


def render_exports(name: str | None) -> None:
    """Exports are made from the saved record only, as bytes now (no deferred file to lose)."""
    if not name:
        st.info("Save the decision to export it: the exports are made from the saved record, with its name, "
                "time, notes and warnings.")
        return
    try:
        rec = record.load(name)
    except UserError as exc:
        st.error(md_text(exc.one_line()))
        return
    st.caption(f"Exports of the saved decision '{md_text(rec['name'])}' (saved {md_text(str(rec.get('created_at')))}); "
               "change and save again to export changes.")
    stem = export.file_stem(rec["name"])
    files = [("Markdown", export.markdown_text, "md", "text/markdown"),
             ("HTML (offline)", export.html_report, "html", "text/html"),
             ("CSV", export.csv_text, "csv", "text/csv"),
             ("JSON", export.json_text, "json", "application/json")]
    for col, (label, make, ext, mime) in zip(st.columns(len(files)), files):
        col.download_button(label, make(rec).encode("utf-8"), f"{stem}.{ext}", mime, key=K + "dl_" + ext,
                            on_click="ignore")


def main() -> None:
    st.title("Decision")
    try:
        campaign = render_campaign()
        devices = [] if campaign else render_devices()
        agg = render_aggregation() if devices or campaign else None
        run_ids = [] if devices or campaign else render_runs()
        if not campaign and not devices and not run_ids:
            return
        weights = render_weights()
        latency_metric, method, cons, require_commercial = render_constraints()
        if weights is None:
            return
        req = DecisionRequest.make(runs=run_ids or None, devices=devices or None, campaign=campaign,
                                   aggregation=agg, constraints=cons,
                                   latency_metric=latency_metric, method=method,
                                   require_commercial=require_commercial,
                                   allow_mixed=bool(st.session_state.get(K + "allow_mixed")))
        req = req.resolved()    # the Quality page's gate, read now: a new gate is a new (uncached) request
        render_gate(req)
        prep = _prepared(str(db_path()), req)
        result = req.evaluate(prep, weights)
        if not result.candidates:
            st.info("These runs have no candidate model.")
            return
        render_verdict(result)
        render_matrix(result)
        if req.is_fleet:
            render_fleet(result)
        render_charts(result)
        render_save(result, req.run_ids(result))
    except UserError as exc:
        st.error(md_text(exc.one_line()))


main()
