"""A spec that passed schema validation once is not validated again (jsonschema's import is a
fifth of a no-op build); any change to the document, the schema or trtc validates afresh."""

import copy

import pytest

from trtc.errors import SpecError
from trtc.spec import known_valid, load_spec
from trtc.spec.schema import SPEC_SCHEMA

VALID = "model: m.onnx\nmax_batch: 2\n"


def test_the_same_document_is_known_valid_after_one_validation(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")  # the loader wants the model file to exist
    spec = tmp_path / "spec.yaml"
    spec.write_text(VALID)
    document = {"model": "m.onnx", "max_batch": 2}
    key = known_valid.digest(document, SPEC_SCHEMA)
    load_spec(spec)
    assert known_valid.validated_before(key)
    assert not known_valid.validated_before(known_valid.digest({**document, "max_batch": 3}, SPEC_SCHEMA))
    changed_schema = copy.deepcopy(SPEC_SCHEMA)
    changed_schema["properties"]["max_batch"]["maximum"] = 1
    assert known_valid.digest(document, changed_schema) != key


def test_an_invalid_spec_is_never_remembered_and_fails_every_time(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: m.onnx\nmax_batch: -1\n")
    for _ in range(2):
        with pytest.raises(SpecError, match="max_batch"):
            load_spec(spec)
    assert not known_valid.validated_before(known_valid.digest({"model": "m.onnx", "max_batch": -1}, SPEC_SCHEMA))


def test_a_document_without_canonical_json_is_always_validated():
    assert known_valid.digest({1: "a", "b": 2}, SPEC_SCHEMA) is None
    assert not known_valid.validated_before(None)
