"""Every input parser, property-based: a valid file reads back as exactly what was written; any bytes, any JSON
value, any depth or number size gives either the result a plain JSON reader implies or one UserError line
naming the file; never another exception, never a partial result."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from core.bench.run.inputs import load_models_config, parse_prompts, read_prompts
from core.errors import UserError
from core.quality.rubrics import parse_rubric_text

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
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
    # what was read is what the file holds, item by item (a plain JSON reader as the reference)
    text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    assert ps.prompts == _expected_prompts(json.loads(text))


def _expected_prompts(doc) -> list[dict]:
    items = doc["prompts"] if isinstance(doc, dict) else doc
    out = []
    for i, item in enumerate(items, 1):
        if isinstance(item, str):
            out.append({"id": f"p{i:02d}", "text": item, "tags": []})
        else:
            out.append({"id": str(item.get("id", f"p{i:02d}")), "text": item.get("text", item.get("prompt")),
                        "tags": list(item.get("tags") or [])})
    assert out and len({p["id"] for p in out}) == len(out) and all(p["text"].strip() for p in out)
    return out


prompt_text = st.text(min_size=1, max_size=40).filter(str.strip)
prompt_items = st.lists(st.tuples(st.text(min_size=1, max_size=12), prompt_text,
                                  st.lists(st.text(max_size=10), max_size=3)),
                        min_size=1, max_size=8, unique_by=lambda t: t[0])


@FAST
@given(prompt_items, st.sampled_from(["strings", "objects", "wrapped", "prompt-key"]), st.booleans(), st.booleans())
def test_a_valid_prompt_set_reads_back_as_written(items, shape, ascii_only, bom):
    if shape == "strings":
        doc = [text for _, text, _ in items]
        want = [{"id": f"p{i:02d}", "text": text, "tags": []} for i, (_, text, _) in enumerate(items, 1)]
    else:
        key = "prompt" if shape == "prompt-key" else "text"
        doc = [{"id": pid, key: text, "tags": tags} for pid, text, tags in items]
        want = [{"id": pid, "text": text, "tags": tags} for pid, text, tags in items]
        if shape == "wrapped":
            doc = {"prompts": doc, "name": "extra fields are ignored"}
    raw = ("\ufeff" if bom else "") + json.dumps(doc, ensure_ascii=ascii_only, indent=1)
    ps = read_prompts(raw.encode("utf-8"), "p.json")
    assert ps.prompts == want and ps.name == "p.json"


@FAST
@given(values)
def test_parse_prompts_from_any_json_value(value):
    try:
        ps = parse_prompts(value, name="p.json")
    except UserError as exc:
        assert "p.json" in _one_line(exc)
        return
    assert ps.prompts == _expected_prompts(value)


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
    doc = json.loads(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.lstrip("\ufeff"))
    assert cfg == (doc["models"] if isinstance(doc.get("models"), dict) else doc)   # as written, nothing dropped


aliases = st.text(min_size=1, max_size=20).filter(str.strip)
model_entries = st.fixed_dictionaries({}, optional={
    "size_mb": st.integers(0, 10**6) | st.floats(0, 1e6), "capabilities": st.lists(st.text(max_size=10), max_size=3),
    "license": st.text(max_size=20), "description": st.text(max_size=30),
    "extra_tool_field": st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    | st.floats(allow_nan=False, allow_infinity=False)})


@FAST
@given(st.dictionaries(aliases, model_entries, min_size=1, max_size=5), st.booleans())
def test_a_valid_models_config_reads_back_as_written(tmp_path_factory, models, wrapped):
    f = tmp_path_factory.mktemp("cfg") / "models.json"
    f.write_text(json.dumps({"models": models} if wrapped else models), encoding="utf-8")
    assert load_models_config(f) == models


@FAST
@given(st.one_of(raw_inputs, values.map(lambda v: json.dumps({"name": "r", "criteria": v}))))
def test_rubric_text_from_any_input(raw):
    try:
        rubric = parse_rubric_text(raw, "r.json")
    except UserError as exc:
        assert "r.json" in _one_line(exc)
        return
    doc = json.loads(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.lstrip("\ufeff"))
    assert rubric.name == doc["name"] and rubric.criterion_names == [c["name"] for c in doc["criteria"]]


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(lambda n: n != "overall")
criteria = st.lists(st.tuples(names, st.text(min_size=1, max_size=30).filter(str.strip), st.integers(-5, 5),
                              st.integers(1, 100), st.floats(0.01, 100)),
                    min_size=1, max_size=5, unique_by=lambda c: c[0])


@FAST
@given(names, st.text(max_size=40), criteria)
def test_a_valid_rubric_reads_back_as_written(name, description, crits):
    doc = {"name": name, "description": description,
           "criteria": [{"name": n, "description": d, "scale": [lo, lo + span], "weight": w}
                        for n, d, lo, span, w in crits]}
    rubric = parse_rubric_text(json.dumps(doc), "r.json")
    assert (rubric.name, rubric.description) == (name, description)
    assert [c.as_json() for c in rubric.criteria] == doc["criteria"]
    again = parse_rubric_text(json.dumps(rubric.as_json()), "again.json")     # its own file form reads back the same
    assert [c.as_json() for c in again.criteria] == doc["criteria"] and again.name == name
