"""The Benchmark page's first run: the smallest model, the short set, one round; sweep lengths that reach the
target meeting."""
from core.bench.first_run import QUICK, QUICK_PROMPT_SET, parameter_count, quick_prompt_set, smallest_model
from core.bench.run.inputs import Settings, shipped_prompt_sets
from core.bench.sweep.plan import default_lengths as sweep_lengths, parse_lengths


def test_the_smallest_model_is_suggested_foundry_first_among_equals():
    # the starter pack as the Models page lists it: the GGUF is smaller on disk, but the same 135M model on
    # llama.cpp starts a server first; the int4 ONNX runs in-process
    rows = [{"id": "gemma", "backend": "foundry", "parameters": "270M", "disk_mb": 880.6},
            {"id": "fp32", "backend": "foundry", "parameters": "135M", "disk_mb": 626.9},
            {"id": "int4", "backend": "foundry", "parameters": "135M", "disk_mb": 192.2},
            {"id": "gguf", "backend": "llamacpp", "parameters": "135M", "disk_mb": 98.4},
            {"id": "remote", "backend": "openai", "parameters": None, "disk_mb": None}]
    assert smallest_model(rows)["id"] == "int4"
    assert smallest_model([{"id": "a", "backend": "openai", "parameters": "1.5B"},
                           {"id": "b", "backend": "openai", "parameters": "500m"}])["id"] == "b"
    assert smallest_model([{"id": "x", "backend": "openai", "disk_mb": 3.0},
                           {"id": "y", "backend": "openai", "disk_mb": float("nan")}])["id"] == "x"
    assert smallest_model([{"id": "remote", "backend": "openai", "disk_mb": None}]) is None
    assert parameter_count("135M") == 1.35e8 and parameter_count("1.5B") == 1.5e9 and parameter_count("big") is None


def test_the_quick_settings_are_valid_and_the_short_set_is_shipped():
    Settings(rounds=QUICK.rounds, warmup=QUICK.warmup, max_tokens=QUICK.max_tokens,
             concurrency=[int(QUICK.concurrency)]).validate()
    names = list(shipped_prompt_sets())
    assert QUICK_PROMPT_SET in names and names[quick_prompt_set(names)] == QUICK_PROMPT_SET
    assert names.index("long_meetings") != quick_prompt_set(names)   # not the minutes-per-request set
    assert quick_prompt_set(["other", "sets"]) == 0


def test_sweep_lengths_end_at_the_target_meeting():
    assert sweep_lengths(6000) == [512, 2048, 4096, 6000]       # measured at the target, not extrapolated
    assert sweep_lengths(1500) == [512, 1500]
    assert sweep_lengths(12000) == [512, 2048, 4096, 12000]
    text = ",".join(map(str, sweep_lengths(6000)))
    assert parse_lengths(text) == sweep_lengths(6000)           # the page's default text parses back
