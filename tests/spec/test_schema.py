import jsonschema

from trtc.spec import spec_schema


def test_schema_is_valid_and_describes_every_top_level_key():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"model", "outputs", "max_batch", "inputs", "profiles", "workspace", "precision", "target", "output"} <= set(schema["properties"])
    assert schema["properties"]["precision"]["oneOf"][1]["properties"]["mode"]["enum"] == ["fp32", "fp16", "bf16", "int8", "fp8"]


def test_bundled_demo_spec_validates():
    import yaml
    from pathlib import Path

    document = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "demo.yaml").read_text())
    document["precision"] = {"mode": document["precision"]}
    assert list(jsonschema.Draft202012Validator(spec_schema()).iter_errors(document)) == []
