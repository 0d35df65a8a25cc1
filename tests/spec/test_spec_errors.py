"""Every way a spec can be wrong gives one line: file:line, key path, what was expected, a hint."""

from __future__ import annotations

import pytest

from tests.cli_runner import run, snapshot
from trtc.errors import SpecError, UsageError
from trtc.spec import load_spec

CASES = {
    "misspelt key": ("model: model.onnx\nwokspace: 1GiB\n", ":2: wokspace: unknown key; did you mean 'workspace'?"),
    "misspelt nested key": (
        "model: model.onnx\nprecision:\n  mode: fp16\n  fallbak: fp32\n",
        ":4: precision.fallbak: unknown key; did you mean 'fallback'?",
    ),
    "bad enum": (
        "model: model.onnx\ntarget:\n  backend: tensorrt_rtx\n",
        ":3: target.backend: expected one of auto, tensorrt, tensorrt-rtx; got 'tensorrt_rtx' (did you mean 'tensorrt-rtx'?)",
    ),
    "precision shorthand": (
        "model: model.onnx\nprecision: fp17\n",
        ":2: precision.mode: expected one of fp32, fp16, bf16, int8, fp8; got 'fp17' (did you mean 'fp16'?)",
    ),
    "size without unit form": (
        "model: model.onnx\nworkspace: 12 parsecs\n",
        ":2: workspace: expected a size in bytes or with a unit, like 512MiB or 2GiB; got '12 parsecs'",
    ),
    "wrong type": ("model: model.onnx\nmax_batch: many\n", ":2: max_batch: expected an integer; got 'many'"),
    "below minimum": ("model: model.onnx\nmax_batch: 0\n", ":2: max_batch: expected a number >= 1; got 0"),
    "missing model": ("max_batch: 4\n", ":1: (top level): missing required key 'model'"),
    "yaml syntax": (
        "model: model.onnx\n  max_batch: [4\n",
        ":2:12: YAML does not parse: mapping values are not allowed here (check indentation and quoting)",
    ),
    "not a mapping": ("- a\n- b\n", ": expected a mapping of spec keys at the top level (model: ..., precision: ...)"),
    "empty": ("", ": the spec is empty; it needs at least 'model: path/to/model.onnx'"),
    "model file missing": (
        "model: nope.onnx\n",
        ":1: model: file not found: {dir}/nope.onnx (paths are relative to the spec's folder)",
    ),
    "range order": (
        "model: model.onnx\ninputs:\n  x: {min: [1,3,16,16], opt: [8,3,16,16], max: [4,3,16,16]}\n",
        ":3: inputs.x: dimension 0 must satisfy min <= opt <= max; got 1, 8, 4",
    ),
    "range rank": (
        "model: model.onnx\ninputs:\n  x: {min: [1,3,16], max: [4,3,16,16]}\n",
        ":3: inputs.x: min, opt and max must have the same rank; got [1, 3, 16], [4, 3, 16, 16], [4, 3, 16, 16]",
    ),
    "range missing max": (
        "model: model.onnx\ninputs:\n  x: {min: [1,3,16,16]}\n",
        ":3: inputs.x: missing 'max' (a range needs min and max; opt defaults to max)",
    ),
    "compute capability": (
        "model: model.onnx\ntarget: {compute_capabilities: [eight]}\n",
        ":2: target.compute_capabilities: expected a compute capability like 8.9 or 12.0; got 'eight'",
    ),
    "pinned value type": (
        "model: model.onnx\ninputs:\n  x: {value: hello}\n",
        ":3: inputs.x.value: expected a number, a list or a boolean; got 'hello'",
    ),
    "plan and report collide": (
        "model: model.onnx\noutput: {plan: out/a.json, report: out/a.json}\n",
        ":2: output: two outputs share one path; give the plan and report different names",
    ),
}


@pytest.mark.parametrize("text,expected", CASES.values(), ids=CASES.keys())
def test_bad_spec_gives_one_exact_line(model_dir, text, expected):
    spec = model_dir / "spec.yaml"
    spec.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert caught.value.message == f"{spec}" + expected.format(dir=model_dir)
    assert caught.value.exit_code == 2


def test_several_problems_are_all_listed(model_dir):
    spec = model_dir / "spec.yaml"
    spec.write_text("model: model.onnx\nmax_batch: 0\ntarget: {backend: cuda}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert caught.value.message == f"2 problems in {spec}"
    assert caught.value.details == [
        f"{spec}:2: max_batch: expected a number >= 1; got 0",
        f"{spec}:3: target.backend: expected one of auto, tensorrt, tensorrt-rtx; got 'cuda'",
    ]


def test_overrides_change_fields_and_are_named_in_errors(model_dir):
    spec = model_dir / "spec.yaml"
    spec.write_text("model: model.onnx\nprecision: fp16\nmax_batch: 2\n")
    loaded = load_spec(spec, ["precision.mode=int8", "workspace=2GiB", "target.compute_capabilities=[8.9, 12.0]"])
    assert loaded.precision.mode == "int8"
    assert loaded.workspace == 2 * 2**30
    assert loaded.target.compute_capabilities == ("8.9", "12.0")
    with pytest.raises(SpecError) as caught:
        load_spec(spec, ["target.backnd=auto"])
    assert caught.value.message == "--set target.backnd: target.backnd: unknown key; did you mean 'backend'?"


def test_override_without_equals_is_a_usage_error(model_dir):
    spec = model_dir / "spec.yaml"
    spec.write_text("model: model.onnx\n")
    with pytest.raises(UsageError) as caught:
        load_spec(spec, ["workspace"])
    assert (
        caught.value.message == "--set expects key.path=value, got 'workspace' (e.g. --set target.optimization_level=3)"
    )


def test_defaults_and_path_resolution(model_dir):
    spec = model_dir / "sub" / "engine.yaml"
    spec.parent.mkdir()
    spec.write_text("model: ../model.onnx\nworkspace: 512MiB\n")
    loaded = load_spec(spec)
    assert loaded.name == "engine"
    assert loaded.model == (model_dir / "model.onnx").resolve()
    assert loaded.output.plan == spec.parent.resolve() / "build" / "engine.plan"
    assert loaded.output.markdown.name == "engine.report.md"
    assert loaded.output.log.name == "engine.build.log"
    assert loaded.workspace == 512 * 2**20
    assert loaded.precision.mode == "fp32"


def test_fingerprint_follows_the_spec_content(model_dir):
    spec = model_dir / "spec.yaml"
    spec.write_text("model: model.onnx\nmax_batch: 2\n")
    first = load_spec(spec).fingerprint
    assert load_spec(spec).fingerprint == first
    assert load_spec(spec, ["max_batch=4"]).fingerprint != first


def test_an_exponent_without_a_dot_is_a_number_in_the_spec_and_in_set(tmp_path):
    """YAML 1.1 reads 1e-9 as a string; a gate written that way must not be refused as one."""
    from trtc.spec import load_spec

    (tmp_path / "m.onnx").write_bytes(b"")
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: m.onnx\nmax_batch: 2\nprecision: fp16\naccuracy: {max_rel_l2: 1e-9}\n")
    assert load_spec(spec).accuracy.max_rel_l2 == 1e-9
    assert load_spec(spec, ["accuracy.max_rel_l2=2E-3"]).accuracy.max_rel_l2 == 2e-3
    spec.write_text("model: m.onnx\nmax_batch: 2\nname: 1e5x\n")
    assert load_spec(spec).name == "1e5x"  # not a number: stays a string


def test_preprocess_keys_and_values_are_checked_before_any_image_is_read(tmp_path):
    """A misspelt preprocess key used to be ignored silently; a bad layout surfaced at the first image."""
    from trtc.errors import SpecError
    from trtc.spec import load_spec

    (tmp_path / "m.onnx").write_bytes(b"")
    spec = tmp_path / "spec.yaml"
    for text, problem in (
        ("{resise: 64}", "preprocess.resise: unknown key; did you mean 'resize'?"),
        ("{layout: NWHC}", "preprocess.layout: expected one of NCHW, NHWC"),
        ("{std: [0.2, 0, 0.2]}", "preprocess.std[1]"),
        ("{crop: [224]}", "preprocess.crop: expected at least 2 item(s)"),
    ):
        spec.write_text(
            f"model: m.onnx\nmax_batch: 2\nprecision: {{mode: int8, calibration: {{data: random, preprocess: {text}}}}}\n"
        )
        with pytest.raises(SpecError) as raised:
            load_spec(spec)
        assert problem in raised.value.message, raised.value.message


def _number_keys(schema: dict, path: tuple = ()) -> list[tuple[str, str]]:
    """(dotted key, how to write a value there) for every spec key whose schema takes a number or
    a list of numbers; a key the user names (an input) is called x."""
    found = []
    kinds = [schema.get("type"), *(o.get("type") for o in schema.get("oneOf", []) + schema.get("anyOf", []))]
    items = [schema.get("items") or {}, *((o.get("items") or {}) for o in schema.get("oneOf", []))]
    if path and "number" in kinds:
        found.append((".".join(path), "{}"))
    elif path and any(isinstance(i, dict) and i.get("type") == "number" for i in items):
        found.append((".".join(path), "[{}]"))
    children = list(schema.get("properties", {}).items())
    if isinstance(schema.get("additionalProperties"), dict):
        children.append(("x", schema["additionalProperties"]))
    for variant in schema.get("oneOf", []) + schema.get("anyOf", []):
        children += [(k, v) for k, v in variant.get("properties", {}).items() if (k, v) not in children]
    for key, sub in children:
        found += _number_keys(sub, (*path, key))
    return sorted(set(found))


NUMBER_KEYS = _number_keys(__import__("trtc.spec.schema", fromlist=["spec_schema"]).spec_schema())


@pytest.mark.parametrize("key,form", NUMBER_KEYS, ids=[key for key, _ in NUMBER_KEYS])
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_number_that_is_not_finite_is_refused(tmp_path, key, form, value):
    """jsonschema's bounds let NaN through (every comparison with it is false): a gate of NaN
    failed every build with "cosine 0.9999 < nan", and the report held a bare NaN."""
    (tmp_path / "m.onnx").write_bytes(b"")
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: m.onnx\nmax_batch: 2\n")
    with pytest.raises(SpecError) as caught:
        load_spec(spec, [f"{key}={form.format(value)}"])
    element = "[0]" if form.startswith("[") else ""
    read = {".nan": "nan", ".inf": "inf", "-.inf": "-inf"}[value]
    assert caught.value.message == f"--set {key}: {key}{element}: YAML read {read} here; write a finite number"


def test_a_number_that_is_not_finite_is_located_in_the_file(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: m.onnx\nmax_batch: 2\nprecision: fp16\naccuracy:\n  min_cosine: .NaN\n")
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    assert caught.value.message == f"{spec}:5: accuracy.min_cosine: YAML read nan here; write a finite number"


def test_a_model_or_a_plan_given_as_the_spec_says_what_to_pass(model_dir):
    # A new user's first try is `trtc build model.onnx`: name the file for what it is and the
    # command that writes a spec for it, not "not a text file".
    model = model_dir / "model.onnx"
    with pytest.raises(SpecError) as raised:
        load_spec(model)
    assert raised.value.message == (
        f"{model}: an ONNX model, not a build spec; `trtc init {model}` writes a spec for it"
    )
    plan = model_dir / "model.plan"
    plan.write_bytes(b"vtrt\0\0\0\0\x02\0\0\0" + bytes(range(256)))  # TensorRT-RTX's header, then binary
    with pytest.raises(SpecError) as raised:
        load_spec(plan)
    assert raised.value.message == f"{plan}: a TensorRT plan, not a build spec; pass the spec it was built from"


def test_trtc_build_of_a_model_is_one_line_exit_2_and_writes_nothing(model_dir):
    before = snapshot(model_dir)
    result = run("build", model_dir / "model.onnx")
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {model_dir / 'model.onnx'}: an ONNX model, not a build spec; "
        f"`trtc init {model_dir / 'model.onnx'}` writes a spec for it\n",
    )
    assert snapshot(model_dir) == before
