"""Benchmark: pick models and a prompt set, run in the background with live progress, read the results."""

import streamlit as st

from ui.router_guard import use_router

from core.bench import charts
from core.bench.run.inputs import ModelSpec, Settings, load_prompts, read_prompts, shipped_prompt_sets
from core.bench.run.job import BenchJob
from core.bench.sweep.plan import DEFAULT_TARGET_OUTPUT, DEFAULT_TARGET_PROMPT, parse_lengths, sweep_job, sweep_lines
from core.bench.sweep.charts import fit_chart, memory_chart
from core.config import db_path
from core.errors import UserError
from core.output import md_text
from core.bench.report import BenchReport, build_report, requests_csv, to_csv, to_markdown
from core.store import bench as db

use_router()  # a deep link as the first request: let app.py route (see ui/router_guard.py)

JOB = "bench_job"


@st.cache_data(ttl=60, show_spinner="Listing models…")
def runnable_models(refresh: int, database: str) -> tuple[list[dict], list[str]]:
    from core.catalog.models import list_models
    result = list_models(include_catalog=False)
    rows = [m for m in result.models if m["backend"] in ("foundry", "openai", "llamacpp") and m.get("cached") is not False]
    return rows, result.notices


def render_models() -> list[ModelSpec]:
    if st.button("Refresh model list", key="bench_refresh_models"):
        st.session_state["bench_refresh"] = st.session_state.get("bench_refresh", 0) + 1
    rows, notices = runnable_models(st.session_state.get("bench_refresh", 0), str(db_path()))
    for n in notices:
        st.caption(f":material/info: {md_text(n)}")
    labels = {f"{m.get('alias') or m['id']}  ·  {m['backend']}  ·  {m.get('source')}": m for m in rows}
    if not labels:
        st.info("No runnable model: build the starter models (`python -m core setup-models`) or add an endpoint "
                "on the Models page.")
        return []
    chosen = st.multiselect("Models (any mix of engines; llama.cpp runs the starter GGUF on its own server)",
                            list(labels), key="bench_models")
    return [ModelSpec.from_row(labels[c]) for c in chosen]


def render_prompts():
    sets = shipped_prompt_sets()
    source = st.radio("Prompt set", ["Shipped", "Upload", "Edit"], horizontal=True, key="bench_prompt_source")
    try:
        if source == "Shipped":
            if not sets:
                st.caption("No prompt set shipped in data/prompts.")
                return None
            name = st.selectbox("Shipped set", list(sets), key="bench_prompt_shipped")
            ps = load_prompts(sets[name])
        elif source == "Upload":
            up = st.file_uploader("Prompt file (JSON list of strings, or of {id, text, tags})", type=["json"],
                                  key="bench_prompt_upload")
            if up is None:
                return None
            ps = read_prompts(up.getvalue(), up.name)
        else:
            base = st.session_state.get("bench_prompt_shipped") or next(iter(sets), None)
            start = sets[base].read_text() if base in sets else '["Explain retrieval augmented generation briefly."]'
            text = st.text_area("Prompts (JSON)", start, height=220, key="bench_prompt_text")
            ps = read_prompts(text, "edited")
    except UserError as exc:
        st.error(md_text(exc.one_line()))
        return None
    st.caption(f"{len(ps.prompts)} prompts · sha256 {ps.hash[:12]}…")
    with st.expander("Prompts (as sent)"):
        st.dataframe([{"id": p["id"], "text": p["text"], "tags": ", ".join(p["tags"])} for p in ps.prompts],
                     hide_index=True)
    return ps


def render_settings() -> Settings | None:
    c = st.columns(6)
    rounds = c[0].number_input("Rounds", 1, 100, 3, key="bench_rounds")
    warmup = c[1].number_input("Warm-up", 0, 20, 1, key="bench_warmup", help="requests per level, excluded")
    max_tokens = c[2].number_input("Max tokens", 1, 4096, 128, key="bench_max_tokens")
    temperature = c[3].number_input("Temperature", 0.0, 2.0, 0.0, step=0.1, key="bench_temperature")
    seed = c[4].number_input("Seed", 0, 2**31 - 1, 0, key="bench_seed")
    timeout = c[5].number_input("Timeout (s)", 1.0, 3600.0, 120.0, key="bench_timeout")
    levels = st.text_input("Concurrency levels", "1", key="bench_concurrency", help="e.g. 1,2,4,8")
    order = st.radio("Order", ["interleaved", "blocked"], horizontal=True, key="bench_order",
                     help="interleaved: round by round, models in rotating order and kept loaded (blocked when "
                          "they do not fit in memory together); blocked: all of one model, then the next")
    try:
        conc = [int(x) for x in levels.replace(" ", "").split(",") if x]
        return Settings(rounds=int(rounds), warmup=int(warmup), max_tokens=int(max_tokens),
                        temperature=float(temperature), seed=int(seed), concurrency=conc,
                        timeout_s=float(timeout), order=order).validate()
    except ValueError:
        st.error("Concurrency levels: whole numbers separated by commas, e.g. 1,2,4")
    except UserError as exc:
        st.error(md_text(exc.one_line()))
    return None


def render_conditions(report) -> None:
    """Noisy levels (a warning), then the order, energy and paired comparisons (core.bench.conditions.lines)."""
    from core.bench.conditions.lines import energy_lines, noisy_lines, order_line, pair_lines
    from core.bench.conditions.paired import run_pairs
    for line in noisy_lines(report.results, str):
        st.warning(md_text("Noisy: " + line))
    with st.expander("Order, energy and paired comparisons"):
        lines = [order_line((report.run.get("environment") or {}).get("schedule"))]
        lines += energy_lines(report.results, str) + pair_lines(run_pairs(report.run_id), str)
        for line in [x for x in lines if x] or ["Nothing recorded (a run stored before these were)."]:
            st.markdown("- " + md_text(line))


def render_lengths_setup() -> dict | None:
    """Lengths mode: prompt lengths to build (or the prompt set below as your own long prompts), the target."""
    own = st.checkbox("Use the prompt set below as my own long prompts", key="bench_len_own")
    c = st.columns(4)
    text = c[0].text_input("Prompt lengths (tokens)", "512,2048,4096,8192", key="bench_len_lengths", disabled=own)
    target_prompt = c[1].number_input("Target prompt tokens", 1, 1_000_000, DEFAULT_TARGET_PROMPT, key="bench_len_tp")
    target_output = c[2].number_input("Target output tokens", 1, 100_000, DEFAULT_TARGET_OUTPUT, key="bench_len_to")
    context = c[3].number_input("Context (0 = what the longest prompt needs)", 0, 1_000_000, 0, key="bench_len_ctx")
    st.caption("One request at a time (concurrency 1); each model gets transcripts of exactly these lengths with "
               "its own tokenizer. Long prompts are slow on a laptop CPU: raise the timeout.")
    try:
        lengths = None if own else parse_lengths(text)
    except UserError as exc:
        st.error(md_text(exc.one_line()))
        return None
    return {"lengths": lengths, "target_prompt": int(target_prompt), "target_output": int(target_output),
            "context": int(context) or None}


def render_setup() -> None:
    job = st.session_state.get(JOB)
    busy = job is not None and job.running
    with st.expander("New run", expanded=not busy):
        specs = render_models()
        mode = st.radio("Mode", ["Prompt set", "Lengths"], horizontal=True, key="bench_mode",
                        help="Lengths: TTFT, prefill and decode speed against prompt length, fitted, and the time "
                             "to notes for a meeting of the target length")
        sweep = render_lengths_setup() if mode == "Lengths" else None
        ps = render_prompts() if mode == "Prompt set" or (sweep and sweep["lengths"] is None) else None
        settings = render_settings()
        if mode == "Lengths":
            ready = bool(specs and settings and sweep and (sweep["lengths"] or ps))
        else:
            ready = bool(specs and ps and settings)
        if st.button("Start", type="primary", disabled=busy or not ready, key="bench_start"):
            try:
                if sweep is not None:
                    lengths = sweep.pop("lengths")
                    st.session_state[JOB] = sweep_job(specs, lengths, settings, prompts=ps if lengths is None else None,
                                                      **sweep).start()
                else:
                    st.session_state[JOB] = BenchJob(specs, ps, settings).start()
                st.session_state["bench_view_run"] = st.session_state[JOB].run_id
                st.session_state["bench_follow_run"] = st.session_state[JOB].run_id
            except UserError as exc:
                st.error(md_text(exc.one_line()))
            st.rerun()


def _progress_body() -> None:
    job = st.session_state.get(JOB)
    if job is None:
        return
    snap = job.snapshot()
    if snap.status in ("completed", "interrupted", "error") and not st.session_state.get("bench_shown_" + snap.run_id):
        st.session_state["bench_shown_" + snap.run_id] = True
        st.session_state["bench_follow_run"] = snap.run_id   # results and downloads follow the run just ended
        st.rerun(scope="app")
    eta = f" · ETA {snap.eta_s:.0f} s" if snap.eta_s is not None and snap.status == "running" else ""
    st.caption(f"Run {snap.run_id}: {snap.status} · {snap.done}/{snap.total} requests · "
               f"{snap.elapsed_s:.0f} s elapsed{eta}" + (" · cancelling…" if snap.cancelling else ""))
    if snap.error:
        st.error(md_text(snap.error))
    for m in snap.models:
        frac = m.done / m.total if m.total else 0.0
        level = f" · concurrency {m.concurrency}" if m.concurrency else ""
        m_eta = f" · ETA {m.eta_s:.0f} s" if m.eta_s and m.phase in ("warmup", "running") else ""
        failed = f" · {m.failed} failed" if m.failed else ""
        st.progress(min(frac, 1.0), text=f"{md_text(m.label)} \\[{m.backend}\\]{level} · {m.phase} · {m.done}/{m.total}{failed}{m_eta}")
        if m.error:
            st.text(f"{m.label}: {m.error}")
    if job.running and st.button("Cancel", key="bench_cancel", disabled=snap.cancelling):
        job.cancel()


def render_progress() -> None:
    job = st.session_state.get(JOB)
    if job is None:
        return
    st.subheader("Progress")
    st.fragment(run_every=1.0 if job.running else None)(_progress_body)()


@st.cache_data(ttl=5)
def cached_runs(version: int, database: str):
    return db.list_runs()


def _report(run_id: str) -> BenchReport:
    return build_report(run_id)


def render_lengths(sweeps: list[dict]) -> None:
    st.markdown("**Prompt length**: time to notes, context and memory")
    for sw in sweeps:
        st.markdown(f"*{md_text(sw.get('label') or sw['model'])} · {md_text(sw['backend'])}*")
        for line in sweep_lines(sw):
            st.caption(md_text(line))
    for chart in (fit_chart(sweeps, "ttft_ms", "TTFT (ms)"), fit_chart(sweeps, "tpot_ms", "TPOT (ms per token)")):
        _chart(chart, "No successful request to draw.")
    _chart(memory_chart(sweeps), "Memory unknown: the app does not know the process that serves these models.")
    st.dataframe([{"model": sw.get("label") or sw["model"], **{k: p.get(k) for k in (
        "length", "prompt_tokens", "prompt_tokens_source", "ttft_ms", "prefill_tokens_per_s", "tpot_ms",
        "decode_tokens_per_s", "peak_rss_mb", "error")}} for sw in sweeps for p in sw["points"]], hide_index=True)


def render_results(runs: list[dict]) -> None:
    st.subheader("Results")
    ids = [r["run_id"] for r in runs]
    follow = st.session_state.pop("bench_follow_run", None)
    if follow in ids:   # a run just started, finished or was cancelled: show it, not the one picked before
        st.session_state["bench_result_run"] = follow
    default = st.session_state.get("bench_view_run")
    index = ids.index(default) if default in ids else 0
    fmt = {r["run_id"]: f"{r['run_id']} · {r['status']} · {r['models'] or 'no model'}" for r in runs}
    run_id = st.selectbox("Run", ids, index=index, format_func=fmt.get, key="bench_result_run")
    report = _report(run_id)
    if report.run["status"] != "completed":
        st.caption(f"This run is {md_text(report.run['status'])}: numbers come from the requests that finished.")
    if report.run["status"] == "interrupted":
        job = st.session_state.get(JOB)
        busy = job is not None and job.running
        if st.button("Resume", key="bench_resume", disabled=busy,
                     help="run only the requests this run is missing, with its settings and models "
                          "(refused when the prompt set or the model files changed)"):
            try:
                st.session_state[JOB] = BenchJob.resume(run_id).start()
                st.session_state["bench_view_run"] = run_id
                st.session_state["bench_follow_run"] = run_id
            except UserError as exc:
                st.error(md_text(exc.one_line()))
            else:
                st.rerun()
    table = charts.summary_table(report.results)
    st.dataframe(table, hide_index=True)
    render_conditions(report)
    if any(r["requests_ok"] and r["requests_ok"] < 20 for r in report.results):
        st.caption("Fewer than 20 successful requests in a level: its p95 is indicative only.")
    measured = report.requests[~report.requests["warmup"].astype(bool)] if len(report.requests) else report.requests
    if report.sweeps:
        render_lengths(report.sweeps)
    tabs = st.tabs(["Distributions", "TTFT vs speed", "Per prompt", "Concurrency and memory", "Requests"])
    with tabs[0]:
        for chart in (charts.latency_boxes(measured, "ttft_ms", "TTFT (ms)"), charts.latency_ecdf(measured, "e2e_ms")):
            if chart is not None:
                st.altair_chart(chart)
    with tabs[1]:
        _chart(charts.ttft_vs_speed(measured), "No successful streamed request.")
    with tabs[2]:
        _chart(charts.prompt_heatmap(measured), "No successful request.")
        st.caption("Cells: median E2E per prompt; tooltips count requests flagged as outliers (beyond 1.5 IQR).")
    with tabs[3]:
        _chart(charts.throughput_vs_concurrency(report.results), "No throughput measured.")
        _chart(charts.memory_stacked(report.results),
               "Memory by part needs the model's process before and after load (unknown for this run).")
    with tabs[4]:
        render_requests(measured)
    c1, c2, c3 = st.columns(3)
    c1.download_button("Summary CSV", to_csv(report), f"benchmark_{run_id}.csv", "text/csv", key="bench_dl_csv")
    c2.download_button("Requests CSV", requests_csv(report), f"benchmark_requests_{run_id}.csv", "text/csv",
                       key="bench_dl_req")
    c3.download_button("benchmark_report.md", to_markdown(report), "benchmark_report.md", "text/markdown",
                       key="bench_dl_md")


def _chart(chart, empty: str) -> None:
    if chart is None:
        st.caption(empty)
    else:
        st.altair_chart(chart)


def render_requests(measured) -> None:
    if measured is None or measured.empty:
        st.caption("No request.")
        return
    cols = ["model", "backend", "concurrency", "prompt_id", "round", "ok", "outlier", "queue_ms", "engine_wait_ms",
            "engine_wait_source", "connect_ms", "ttft_ms", "tpot_ms",
            "e2e_ms", "completion_tokens", "token_count_source", "finish_reason", "error", "output_text"]
    st.dataframe(measured[cols], hide_index=True)   # outputs as data: plain text
    pick = st.selectbox("Show one output", range(len(measured)), key="bench_output_pick",
                        format_func=lambda i: f"{measured.iloc[i]['model']} · {measured.iloc[i]['prompt_id']} · "
                                              f"round {measured.iloc[i]['round']}")
    if pick is not None:
        st.text(measured.iloc[int(pick)]["output_text"] or "(no output)")


def render_compare(runs: list[dict]) -> None:
    st.subheader("Compare two runs")
    if len(runs) < 2:
        st.caption("Two runs are needed.")
        return
    ids = [r["run_id"] for r in runs]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A", ids, index=1, key="bench_cmp_a")
    b = c2.selectbox("Run B", ids, index=0, key="bench_cmp_b")
    ra, rb = _report(a), _report(b)
    if ra.run.get("prompt_set_hash") != rb.run.get("prompt_set_hash"):
        st.caption("The two runs used different prompt sets: compare with care.")
    table = charts.compare_runs(ra.results, rb.results, ra.requests, rb.requests)
    if table.empty:
        st.caption("No model x engine x concurrency level in common.")
    else:
        st.dataframe(table, hide_index=True)


def render_past(runs: list[dict]) -> None:
    st.subheader("Past runs")
    st.dataframe([{k: r[k] for k in ("run_id", "created_at", "device", "status", "prompt_set", "models", "requests",
                                     "failed")}
                  for r in runs], hide_index=True)


st.title("Benchmark")
st.caption("TTFT, TPOT, E2E latency, throughput per concurrency level, memory and CPU of the model's process "
           "(definitions: shared/notes/metrics.md). Every request is stored.")
render_setup()
render_progress()
job = st.session_state.get(JOB)
all_runs = cached_runs(hash((job.run_id, job.running)) if job else 0, str(db_path()))
devices = sorted({r["device"] for r in all_runs})
if len(devices) > 1:
    picked = st.multiselect("Devices", devices, key="bench_f_devices", help="show the runs of these devices only")
    all_runs = [r for r in all_runs if not picked or r["device"] in picked]
if not all_runs:
    st.info("No benchmark run yet.")
else:
    render_results(all_runs)
    render_compare(all_runs)
    render_past(all_runs)
from ui.campaigns_view import render_campaigns  # noqa: E402  (the Campaigns section)
render_campaigns()
