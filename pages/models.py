"""Models: every candidate in one list; register, endpoints, load/unload, try a prompt, execution providers."""
import threading

import pandas as pd
import streamlit as st

from ui.router_guard import use_router

from core.catalog import endpoints
from core.errors import UserError
from core.output import md_text
from core.engines.pool import LOADABLE_BACKENDS, LoadedModels, shared_pool
from core.catalog.models import MODEL_FIELDS, list_models
from core.config import db_path
from core.store import devices

use_router()  # a deep link as the first request: let app.py route (see ui/router_guard.py)


def loaded_models() -> LoadedModels:
    return shared_pool()   # one pool per process: the sidebar lists it, unloads it when idle


@st.cache_data(ttl=60, show_spinner="Listing models…")
def cached_models(loaded: frozenset, refresh: int):
    result = list_models(loaded_ids=set(loaded))
    return result.models, result.endpoints, result.notices


@st.cache_data(ttl=30, show_spinner=False)
def cached_devices(store: str) -> list[str]:
    return devices.device_names()


def render_list(models, eps, notices) -> list[dict]:
    for notice in notices:
        st.caption(f":material/info: {md_text(notice)}")
    for ep in eps:
        if ep["status"] != "ok":
            st.caption(f":material/cloud_off: endpoint {md_text(ep['name'])}: unreachable ({md_text(ep['message'])})")
    if not models:
        st.info("No models yet. Run `make run` (it builds the starter models) or add an endpoint below.")
        return []
    df = pd.DataFrame(models)[list(MODEL_FIELDS)]
    c1, c2, c3, c4 = st.columns(4)
    sources = c1.multiselect("Source", sorted(df["source"].unique()), key="models_f_source")
    licenses = c2.multiselect("License", sorted(df["license"].fillna("unknown").unique()), key="models_f_license")
    max_mb = float(df["disk_mb"].max() or 0) if df["disk_mb"].notna().any() else 0.0
    limit = c3.number_input("Max disk MB (0 = any)", min_value=0.0, value=0.0, step=100.0, key="models_f_size",
                            help=f"largest listed: {max_mb:,.0f} MB")
    on_devices = c4.multiselect("Benchmarked on device", cached_devices(str(db_path())), key="models_f_device",
                                help="models with a benchmark run recorded on these devices")
    mask = pd.Series(True, index=df.index)
    if on_devices:
        benched = devices.models_on_devices(on_devices)
        mask &= df["id"].isin(benched) | df["alias"].isin(benched)
    if sources:
        mask &= df["source"].isin(sources)
    if licenses:
        mask &= df["license"].fillna("unknown").isin(licenses)
    if limit:
        mask &= df["disk_mb"].fillna(float("inf")) <= limit
    shown = df[mask].copy()
    shown["capabilities"] = shown["capabilities"].map(lambda c: ", ".join(c or []))
    st.dataframe(shown, hide_index=True, width="stretch",
                 column_config={"disk_mb": st.column_config.NumberColumn("disk MB", format="%.1f")})
    return [models[i] for i in shown.index]


def render_try(models: list[dict], pool: LoadedModels) -> None:
    from core.engines.tryprompt import stream_answer

    runnable = [m for m in models if m["backend"] in ("foundry", "openai", "llamacpp") and m.get("cached") is not False]
    if not runnable:
        st.caption("No runnable model in the list.")
        return
    labels = {f"{m['alias'] or m['id']}  ·  {m['source']}": m for m in runnable}
    with st.form("models_try_form"):
        choice = st.selectbox("Model", list(labels), key="models_try_model")
        prompt = st.text_area("Prompt", "List three benefits of local inference.", key="models_try_prompt")
        max_tokens = st.number_input("Max tokens", 8, 2048, 128, key="models_try_max")
        go = st.form_submit_button("Run", type="primary")
    if not go:
        return
    stats: dict = {}
    model = labels[choice]
    name = model.get("display_name") or model.get("alias") or model["id"]
    if model["backend"] in LOADABLE_BACKENDS and model["id"] not in pool.ids():
        try:
            with st.spinner(f"Loading {md_text(name)}…"):
                pool.load(model)
        except UserError as exc:
            st.error(md_text(exc.one_line()))
            return
    box = st.empty()
    text = ""
    try:
        for piece in stream_answer(labels[choice], prompt, pool=pool, max_tokens=int(max_tokens), stats=stats):
            text += piece
            box.text(text)  # plain text, never markdown
    except UserError as exc:
        st.error(md_text(exc.one_line()))
        return
    cols = st.columns(3)
    cols[0].metric("Time to first token", f"{stats['ttft_ms']:.0f} ms" if stats.get("ttft_ms") is not None else "–")
    cols[1].metric("Decode tokens/s", f"{stats['decode_tok_s']:.1f}" if stats.get("decode_tok_s") else "–")
    cols[2].metric("Output tokens", md_text(f"{stats.get('completion_tokens') or '–'} ({stats.get('token_count_source', '?')})"))


def render_load(models: list[dict], pool: LoadedModels) -> None:
    local = [m for m in models if m["backend"] in LOADABLE_BACKENDS and m.get("cached")]
    if not local:
        st.caption("No cached Foundry Local or llama.cpp model.")
        return
    st.caption("Each loaded model runs in its own process; unloading ends it and returns its memory.")
    loaded = pool.ids()
    for m in local:
        c1, c2, c3 = st.columns([4, 3, 1])
        c1.text(f"{m['display_name'] or m['id']}  ({m['backend']})")
        info = pool.info(m["id"]) if m["id"] in loaded else None
        if info:
            rss = f", RSS {info.rss_after_load_mb:.0f} MB" if info.rss_after_load_mb is not None else ""
            c2.caption(f"loaded in {info.load_s:.2f} s{rss}")
        else:
            c2.caption("not loaded")
        if m["id"] in loaded:
            if c3.button("Unload", key=f"models_unload_{m['id']}"):
                pool.unload(m["id"])
                cached_models.clear()
                st.rerun()
        elif c3.button("Load", key=f"models_load_{m['id']}"):
            try:
                with st.spinner(f"Loading {m['display_name'] or m['id']}…"):
                    pool.load(m)
                cached_models.clear()
                st.rerun()
            except UserError as exc:
                st.error(md_text(exc.one_line()))


def render_register() -> None:
    from core.catalog import foundry

    with st.form("models_register_form"):
        folder = st.text_input("ONNX Runtime GenAI folder", key="models_reg_folder")
        c1, c2 = st.columns(2)
        model_id = c1.text_input("Model id", placeholder="my-model-generic-cpu:1", key="models_reg_id")
        display = c2.text_input("Display name", key="models_reg_display")
        publisher = c1.text_input("Publisher", "local", key="models_reg_pub")
        license_id = c2.text_input("License id", "unknown", key="models_reg_license")
        params = c1.text_input("Parameters", placeholder="135M", key="models_reg_params")
        quant = c2.text_input("Quantization", placeholder="int4", key="models_reg_quant")
        replace = st.checkbox("If this id is registered for another folder, replace that registration",
                              key="models_reg_replace")
        go = st.form_submit_button("Validate and register")
    if go:
        problems = foundry.validate_model_folder(folder) if folder else ["no folder given"]
        if problems:
            st.error("Cannot register: " + md_text("; ".join(problems)))
            return
        try:
            registered = foundry.register_local_model(folder, model_id.strip(), display_name=display or model_id,
                                                      publisher=publisher, license=license_id,
                                                      parameters=params or None, quantization=quant or None,
                                                      replace=replace)
        except UserError as exc:
            st.error(md_text(exc.one_line()))
            return
        st.success(f"Registered {md_text(registered)}")
        cached_models.clear()


def render_endpoints(eps) -> None:
    if eps:
        st.dataframe(pd.DataFrame(eps)[["name", "base_url", "api_key_env", "status", "n_models", "message"]],
                     hide_index=True, width="stretch")
    if st.session_state.pop("models_ep_added", False):  # cleared only after a success, kept on an error
        for key in ("models_ep_name", "models_ep_url", "models_ep_key"):
            st.session_state.pop(key, None)
    with st.form("models_ep_form", clear_on_submit=False):
        c1, c2, c3 = st.columns([2, 4, 2])
        name = c1.text_input("Name", key="models_ep_name")
        url = c2.text_input("Base URL", placeholder="http://127.0.0.1:8080/v1", key="models_ep_url")
        key_env = c3.text_input("API key env var (name only)", placeholder="OPENAI_API_KEY", key="models_ep_key")
        add = st.form_submit_button("Add endpoint")
    if add:
        try:
            endpoints.add(name, url, key_env or None)
            cached_models.clear()
            st.session_state["models_ep_added"] = True
            st.rerun()
        except UserError as exc:
            st.error(md_text(exc.one_line()))
    names = [e["name"] for e in eps]
    if names:
        c1, c2 = st.columns([4, 1])
        target = c1.selectbox("Remove endpoint", names, key="models_ep_remove", label_visibility="collapsed")
        if c2.button("Remove", key="models_ep_remove_btn"):
            endpoints.remove(target)
            cached_models.clear()
            st.rerun()


def render_download(models: list[dict]) -> None:
    from core.catalog import foundry

    remote = [m for m in models if m["source"] == "foundry-catalog" and not m.get("cached")]
    state = st.session_state.setdefault("models_dl", {})
    if not remote and not state:
        st.caption("Public catalog not reachable or nothing to download (offline is normal).")
        return
    if remote and not state.get("thread"):
        choice = st.selectbox("Model to download", [m["id"] for m in remote], key="models_dl_choice")
        if st.button("Download", key="models_dl_go"):
            cancel = threading.Event()
            state.update(model=choice, pct=0.0, error=None, done=False, cancel=cancel)

            def work():
                try:
                    foundry.download_model(choice, progress=lambda p: state.update(pct=float(p)), cancel=cancel)
                except UserError as exc:
                    state["error"] = exc.one_line()
                state["done"] = True

            state["thread"] = threading.Thread(target=work, daemon=True)
            state["thread"].start()
            st.rerun()

    def progress():
        if not state.get("thread"):
            return
        st.progress(min(state["pct"], 100.0) / 100, text=f"{md_text(state['model'])}: {state['pct']:.0f}%")
        if state["done"]:
            if state["error"]:
                st.error(md_text(state["error"]))
            else:
                st.success(f"Downloaded {md_text(state['model'])}")
            state.clear()
            cached_models.clear()
        elif st.button("Cancel download", key="models_dl_cancel"):
            state["cancel"].set()

    # polls only while a download runs: an idle page costs no CPU
    st.fragment(run_every=1.0 if state.get("thread") else None)(progress)()


def render_eps() -> None:
    from core.catalog import foundry

    try:
        eps = foundry.execution_providers()
    except UserError as exc:
        st.caption(md_text(exc.one_line()))
        return
    if eps:
        st.dataframe(pd.DataFrame(eps), hide_index=True, width="stretch")
    else:
        st.caption("Foundry Local discovered no extra execution providers on this machine (CPU only).")
    st.caption("Compare a model with and without acceleration: benchmark it once per execution provider.")
    if eps and st.button("Download and register execution providers", key="models_eps_register"):
        try:
            with st.spinner("Registering execution providers…"):
                foundry.register_execution_providers()
            st.success("Execution providers registered.")
        except UserError as exc:
            st.error(md_text(exc.one_line()))


st.title("Models")
st.caption("Every candidate from Foundry Local, the llama.cpp engine and your OpenAI-compatible endpoints.")
pool = loaded_models()
refresh = st.session_state.setdefault("models_refresh", 0)
if st.button("Refresh list", icon=":material/refresh:", key="models_refresh_btn"):
    st.session_state["models_refresh"] += 1
    cached_models.clear()
models, eps, notices = cached_models(frozenset(pool.ids()), st.session_state["models_refresh"])
shown = render_list(models, eps, notices)

tabs = st.tabs(["Try a prompt", "Load / unload", "Register a folder", "Endpoints", "Download", "Execution providers"])
with tabs[0]:
    render_try(shown or models, pool)
with tabs[1]:
    render_load(models, pool)
with tabs[2]:
    render_register()
with tabs[3]:
    render_endpoints(eps)
with tabs[4]:
    render_download(models)
with tabs[5]:
    render_eps()
