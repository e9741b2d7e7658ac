"""The model contract: one validator, messages that name the field, Deepness fallback."""

import json

import pytest

from arctic_assist.core import spec as S


def valid_doc(**over):
    doc = {
        "schema": S.SCHEMA,
        "schema_version": 1,
        "name": "m",
        "version": "1.0",
        "task": "segmentation",
        "input": {
            "name": "image",
            "dtype": "uint16",
            "bands": ["B2", "B3", "B4", "B8"],
            "normalization": {"type": "pixeldino_logsigmoid"},
            "nodata": {"value": 0},
        },
        "pixel_size_m": 10.0,
        "tile": {"size": 192, "overlap": 48, "multiple_of": 16},
        "classes": ["background", "rts"],
        "threshold": 0.5,
        "outputs": [{"name": "rts_probability", "activation": "none"}],
        "opset": 17,
        "provenance": {"method": "pixeldino", "metrics": {"iou": 0.4}},
    }
    doc.update(over)
    return doc


def test_roundtrip_through_json():
    spec = S.validate_metadata(valid_doc())
    again = S.validate_metadata(json.loads(spec.to_json()))
    assert again == spec
    assert spec.normalization.scale == 0.005 and spec.normalization.gain == 2.5
    assert spec.nodata_value == 0 and spec.multiple_of == 16


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.pop("task"), "task"),
        (lambda d: d.update(task="detection"), "task"),
        (lambda d: d["input"].pop("bands"), "input.bands"),
        (lambda d: d["input"].update(dtype="complex64"), "input.dtype"),
        (lambda d: d["tile"].update(size=-3), "tile.size"),
        (lambda d: d["tile"].update(overlap=500), "tile.overlap"),
        (lambda d: d.update(threshold=1.5), "threshold"),
        (lambda d: d.update(pixel_size_m="ten"), "pixel_size_m"),
        (lambda d: d.update(outputs=[]), "outputs"),
        (
            lambda d: d["input"].update(
                normalization={"type": "standardize", "mean": [1], "std": [1]}
            ),
            "input.normalization.mean",
        ),
        (lambda d: d.update(schema_version=99), "schema_version"),
    ],
)
def test_invalid_field_is_named(mutate, field):
    doc = valid_doc()
    mutate(doc)
    with pytest.raises(S.ModelSpecError, match=field.replace(".", r"\.")):
        S.validate_metadata(doc)


def test_contour_needs_contour_block():
    doc = valid_doc(task="contour", outputs=[{"name": "contour_3"}])
    with pytest.raises(S.ModelSpecError, match="contour.vertices"):
        S.validate_metadata(doc)
    doc["contour"] = {"vertices": 64, "iterations": 4}
    spec = S.validate_metadata(doc)
    assert spec.contour.vertices == 64


def test_no_metadata_message_names_the_file():
    with pytest.raises(S.ModelSpecError, match="foo.onnx carries no Arctic Assist metadata"):
        S.spec_from_metadata_props({}, path="foo.onnx")


def test_deepness_keys_are_mapped():
    props = {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({"0": "background", "1": "slump"}),
        "resolution": json.dumps(50),
        "tiles_size": json.dumps(256),
        "tiles_overlap": json.dumps(25),
        "seg_thresh": json.dumps(0.6),
        "standardization_mean": json.dumps([0.4, 0.4, 0.4]),
        "standardization_std": json.dumps([0.2, 0.2, 0.2]),
    }
    spec = S.spec_from_metadata_props(props, n_inputs=3, input_name="x", output_names=["y"])
    assert spec.source_format == "deepness"
    assert spec.pixel_size_m == 0.5 and spec.tile_size == 256 and spec.tile_overlap == 64
    assert spec.classes == ("background", "slump") and spec.threshold == 0.6
    assert spec.normalization.type == "standardize" and spec.normalization.scale == 1 / 255
    assert spec.n_bands == 3 and spec.input_name == "x"


def test_deepness_detector_is_refused():
    with pytest.raises(S.ModelSpecError, match="Segmentor"):
        S.spec_from_metadata_props({"model_type": '"Detector"'}, n_inputs=3)
