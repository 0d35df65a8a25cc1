from pathlib import Path

import jsonschema
import pytest

from trtc.spec import spec_schema


def test_schema_is_valid_and_describes_every_top_level_key():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"model", "outputs", "max_batch", "inputs", "profiles", "workspace", "precision", "target", "output"} <= set(
        schema["properties"]
    )
    assert schema["properties"]["precision"]["oneOf"][1]["properties"]["mode"]["enum"] == [
        "fp32",
        "fp16",
        "bf16",
        "int8",
        "fp8",
    ]


def test_bundled_demo_spec_validates():
    from pathlib import Path

    import yaml

    document = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "demo.yaml").read_text())
    document["precision"] = {"mode": document["precision"]}
    assert list(jsonschema.Draft202012Validator(spec_schema()).iter_errors(document)) == []


def test_the_names_the_schema_allows_are_the_registries():
    import json

    from trtc.passes import PASSES
    from trtc.spec.schema import GPU_NAMES, PASS_NAMES

    assert PASS_NAMES == list(PASSES)
    gpus = json.loads((Path(__file__).resolve().parents[2] / "trtc" / "report" / "gpus.json").read_text())
    assert GPU_NAMES == [gpu["name"] for gpu in gpus["gpus"]]


def test_an_unknown_pass_or_gpu_is_a_spec_error_with_its_line_before_the_model_loads(tmp_path):
    from trtc.errors import SpecError
    from trtc.spec import load_spec

    (tmp_path / "model.onnx").write_bytes(b"not a model: never read")
    for text, expected in (
        ("fusion: {disable: [merge-sibling]}\n", "spec.yaml:2: fusion.disable[0]"),
        ("target: {gpu: RTX 4080}\n", "spec.yaml:2: target.gpu"),
    ):
        (tmp_path / "spec.yaml").write_text("model: model.onnx\n" + text)
        with pytest.raises(SpecError) as caught:
            load_spec(tmp_path / "spec.yaml")
        assert caught.value.message.startswith(f"{tmp_path / expected}") or expected in caught.value.message


def test_the_spec_dataclasses_have_the_schemas_keys_and_documented_defaults():
    """Consumers read defaults from the dataclasses; the schema documents them (and `trtc schema`
    and the spec reference show them): the two must say the same."""
    import dataclasses

    from trtc.spec.model import AccuracySpec, CalibrationSpec, FusionSpec, PrecisionSpec, TargetSpec

    properties = spec_schema()["properties"]
    precision = properties["precision"]["oneOf"][1]["properties"]
    blocks = {
        PrecisionSpec: precision,
        CalibrationSpec: precision["calibration"]["properties"],
        AccuracySpec: properties["accuracy"]["properties"],
        FusionSpec: properties["fusion"]["properties"],
        TargetSpec: properties["target"]["properties"],
    }
    for kind, keys in blocks.items():
        fields = {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(kind)
        }
        assert set(fields) == set(keys), kind.__name__
        for name, default in fields.items():
            documented = keys[name].get("default")
            if documented is None:  # none documented: the dataclass says "not given"
                assert default in (None, ()) or dataclasses.is_dataclass(default), (
                    f"{kind.__name__}.{name}: {default!r} is not in the schema"
                )
            else:
                assert default == documented, f"{kind.__name__}.{name}: {default!r}, the schema says {documented!r}"
