"""Client ceiling: requests/s our HTTP engine sustains against a zero-delay server at concurrency 32.

    .venv/bin/python -m tests.perf.bench_ceiling [--requests 3000] [--tokens 16] [--concurrency 32] [--pairs 2]

The server (own process, stdlib asyncio) answers at once: TOKENS tokens, one per SSE chunk, plus a
usage chunk. Client and server share this machine's cores, as they would on a laptop. Measured through
the runner (engine + records + metrics, rows not stored): requests / (last end - first start), for our
HTTP engine (a hand-written asyncio client) and for the same engine on aiohttp (alternating, PAIRS
times each; the best of each is kept). On the same server in the same run, for comparison: one ``AsyncOpenAI`` event
loop, and guidellm 0.8.1 (``guidellm run``, profile concurrent, same concurrency and request count;
its rate = successful requests / its measured window).

guidellm lives in its own virtual environment, never in the app's: ``.venv-guidellm`` at the
repository root (or the ``guidellm`` executable named by $GUIDELLM), made with
``python -m venv .venv-guidellm && .venv-guidellm/bin/pip install guidellm==0.8.1``. Without it the
script says so and prints the other figures.

Target: at least 3x guidellm's rate (and at least 300 req/s when guidellm is not there to compare).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from core.bench.run.inputs import Settings
from tests.perf._clients import AIOHTTP, LABELS, OURS, run
from tests.perf._server import REPO, server_process

GUIDELLM_VERSION = "0.8.1"
TARGET_VS_GUIDELLM = 3.0
TARGET_ABSOLUTE = 300.0


def ours(client: str, url: str, model: str, n: int, conc: int) -> tuple[float, int]:
    runner = run(client, url, model, n, Settings(rounds=1, warmup=conc, max_tokens=4096, concurrency=[conc],
                                                 timeout_s=60))
    rows = [r for r in runner.last_rows if not r["warmup"]]
    window = max(r["end_offset_s"] for r in rows) - min(r["start_offset_s"] for r in rows)
    return len(rows) / window, sum(not r["ok"] for r in rows)


def async_openai(url: str, model: str, n: int, conc: int) -> float:
    from openai import AsyncOpenAI

    async def go():
        client = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        sem = asyncio.Semaphore(conc)

        async def one(i):
            async with sem:
                stream = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"p{i}"}], stream=True,
                    stream_options={"include_usage": True}, max_tokens=4096)
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(conc)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)
    return asyncio.run(go())


def guidellm_exe() -> tuple[str | None, str]:
    """The guidellm executable and its version, or (None, why not)."""
    exe = os.environ.get("GUIDELLM") or str(REPO / ".venv-guidellm" / "bin" / "guidellm")
    if not Path(exe).is_file():
        return None, (f"not installed ({exe} missing): python -m venv .venv-guidellm && "
                      f".venv-guidellm/bin/pip install guidellm=={GUIDELLM_VERSION}")
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{exe} does not run: {exc}"
    version = out.strip().rsplit(" ", 1)[-1]
    if version != GUIDELLM_VERSION:
        return None, f"{exe} is guidellm {version or '?'}, not {GUIDELLM_VERSION}"
    return exe, version


def guidellm(exe: str, url: str, model: str, n: int, conc: int) -> tuple[float, int, str]:
    """guidellm's rate on our server: (successful requests / its measured window, errored, note)."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "prompts.jsonl", Path(tmp) / "out.json"
        data.write_text("".join(json.dumps({"prompt": f"prompt {i}"}) + "\n" for i in range(n)))
        cmd = [exe, "run",
               # validate_backend=false: our test server has no /health route
               "--backend", f"kind=openai_http,target={url.removesuffix('/v1')},model={model},validate_backend=false",
               "--profile", f"kind=concurrent,streams={conc}",
               "--constraint", f"kind=max_requests,count={n}",
               "--data", f"kind=json_file,path={data}",
               "--output", f"kind=json,path={out}",
               "--disable-console"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0 or not out.is_file():
            tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
            raise RuntimeError(f"guidellm exited {proc.returncode}: {tail}")
        bench = json.loads(out.read_text())["benchmarks"][0]
        state = bench["scheduler_state"]
        ok, errored = state["successful_requests"], state["errored_requests"]
        note = f"{state['num_processes']} worker processes"
        return ok / bench["duration"], errored, note


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--no-guidellm", action="store_true")
    a = ap.parse_args()
    model = f"ceiling;n={a.tokens}"
    exe, gl_info = (None, "skipped (--no-guidellm)") if a.no_guidellm else guidellm_exe()
    runs: dict[str, list[tuple[float, int]]] = {OURS: [], AIOHTTP: []}
    gl_rate = gl_err = gl_note = None
    with server_process() as url:
        for _ in range(a.pairs):
            for client in runs:
                runs[client].append(ours(client, url, model, a.requests, a.concurrency))
        other = async_openai(url, model, min(a.requests, 1000), a.concurrency)
        if exe:
            try:
                gl_rate, gl_err, gl_note = guidellm(exe, url, model, a.requests, a.concurrency)
            except (RuntimeError, OSError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
                gl_info = f"did not run: {' '.join(str(exc).split())[:300]}"
    (mine, mine_failed), (aio, aio_failed) = (max(runs[k]) for k in (OURS, AIOHTTP))
    print(f"zero-delay server, {a.tokens} tokens per answer, concurrency {a.concurrency}, {a.requests} requests")
    print(f"req/s, best of {a.pairs} alternating runs (all: "
          + "; ".join(f"{k} {', '.join(f'{r:.0f}' for r, _ in vs)}" for k, vs in runs.items()) + ")")
    w = 50
    print(f"{LABELS[OURS] + ':':{w}}{mine:7.1f} req/s ({mine_failed} failed)")
    print(f"{LABELS[AIOHTTP] + ':':{w}}{aio:7.1f} req/s ({aio_failed} failed)  (ratio aiohttp/ours {aio / mine:.2f})")
    print(f"{'one AsyncOpenAI event loop:':{w}}{other:7.1f} req/s  (ratio ours/AsyncOpenAI {mine / other:.2f})")
    if gl_rate:
        print(f"{f'guidellm {GUIDELLM_VERSION} ({gl_note}):':{w}}{gl_rate:7.1f} req/s ({gl_err} failed)"
              f"  (ratio ours/guidellm {mine / gl_rate:.2f}, aiohttp/guidellm {aio / gl_rate:.2f})")
        ok = mine >= TARGET_VS_GUIDELLM * gl_rate and not mine_failed
        print(f"target >= {TARGET_VS_GUIDELLM:g}x guidellm: ours {'OK' if ok else 'MISSED'}; "
              f"on aiohttp {'OK' if aio >= TARGET_VS_GUIDELLM * gl_rate and not aio_failed else 'MISSED'}")
    else:
        print(f"guidellm {GUIDELLM_VERSION}: {gl_info}")
        ok = mine >= TARGET_ABSOLUTE and not mine_failed
        print(f"guidellm not measured; target >= {TARGET_ABSOLUTE:g} req/s: {'OK' if ok else 'MISSED'}")

if __name__ == "__main__":
    main()
