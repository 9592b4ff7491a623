"""Every input parser, property-based: any bytes, any JSON value, any depth or number size gives either a
valid result or one UserError line naming the file; never another exception, never a partial result."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from core.bench.inputs import load_models_config, parse_prompts, read_prompts
from core.errors import UserError
from core.quality.rubrics import parse_rubric_text

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                      max_leaves=15)
nasty = st.sampled_from(["[" * 3000, "[" * 70 + "]" * 70, "[NaN]", "[1e400]", "[Infinity]", "\ufeff[]", "",
                         "\x00\x01", "[\"\\ud800\"]", "{\"prompts\": " + "[" * 100 + "]" * 100 + "}",
                         json.dumps([{"text": "a", "id": "x"}, {"text": "b", "id": "x"}])])
raw_inputs = st.one_of(st.binary(max_size=200), st.text(max_size=200), values.map(json.dumps), nasty)


def _one_line(exc: UserError) -> str:
    line = exc.one_line()
    assert line and "Traceback" not in line
    return line


@FAST
@given(raw_inputs)
def test_prompt_sets_from_any_input(raw):
    try:
        ps = read_prompts(raw, "p.json")
    except UserError as exc:
        assert "p.json" in _one_line(exc)
        return
    assert ps.prompts and all(isinstance(p["text"], str) and p["text"].strip() for p in ps.prompts)
    assert len({p["id"] for p in ps.prompts}) == len(ps.prompts)


@FAST
@given(values)
def test_parse_prompts_from_any_json_value(value):
    try:
        parse_prompts(value, name="p.json")
    except UserError as exc:
        _one_line(exc)


@FAST
@given(raw_inputs)
def test_models_config_from_any_input(tmp_path_factory, raw):
    f = tmp_path_factory.mktemp("cfg") / "models.json"
    f.write_bytes(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    try:
        cfg = load_models_config(f)
    except UserError as exc:
        assert "models.json" in _one_line(exc)
        return
    for entry in cfg.values():
        size = entry.get("size_mb")
        assert size is None or (isinstance(size, (int, float)) and not isinstance(size, bool) and size >= 0)


@FAST
@given(st.one_of(raw_inputs, values.map(lambda v: json.dumps({"name": "r", "criteria": v}))))
def test_rubric_text_from_any_input(raw):
    try:
        parse_rubric_text(raw, "r.json")
    except UserError as exc:
        assert "r.json" in _one_line(exc)
