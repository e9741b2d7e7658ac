"""OnnxModel: refuses unusable models with one clear message; providers; activations."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_factory import (
    contour_spec_model,
    corrupt_model,
    make_spec,
    model_without_metadata,
    weighted_sum_model,
    weighted_sum_reference,
)

from arctic_assist.core.errors import ModelError
from arctic_assist.core.onnx_model import (
    CallSizer,
    OnnxModel,
    max_supported_opset,
    read_model_info,
    read_model_spec,
)
from arctic_assist.core.spec import METADATA_KEY, ModelSpecError, OutputSpec


def test_loads_and_predicts_on_cpu(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0, -0.5, 0.25, 2.0], bias=-0.1)
    model = OnnxModel.load(str(path), "cpu")
    assert model.provider == "CPUExecutionProvider"
    assert model.spec.task == "segmentation" and model.spec.bands == ("B2", "B3", "B4", "B8")
    assert model.opset == 17
    x = np.random.default_rng(0).normal(size=(2, 4, 9, 11)).astype(np.float32)
    p = model.predict(x)
    assert p.shape == (2, 1, 9, 11) and p.dtype == np.float32
    np.testing.assert_allclose(
        p[1, 0], weighted_sum_reference(x[1], [1.0, -0.5, 0.25, 2.0], -0.1), atol=1e-6
    )
    assert model.inference_seconds > 0 and model.calls == 1


def test_yield_cpu_switches_to_sleeping_threads_once(tmp_path):
    """yield_cpu makes the CPU session again with idle threads that sleep: same results,
    done once."""
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0, -0.5, 0.25, 2.0], bias=-0.1)
    model = OnnxModel.load(str(path), "cpu", threads=2)
    x = np.random.default_rng(1).normal(size=(3, 4, 16, 16)).astype(np.float32)
    before = model.predict(x)
    first = model.session
    assert not model.yielding
    assert model.yield_cpu() is True and model.yielding
    assert model.session is not first
    opts = model.session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == 2
    np.testing.assert_array_equal(model.predict(x), before)
    assert model.yield_cpu() is False
    # a model file replaced since loading is never loaded in the middle of a run
    other = OnnxModel.load(str(path), "cpu")
    weighted_sum_model(path, [2.0, 1.0, 1.0, 1.0], bias=0.5)
    kept = other.session
    assert other.yield_cpu() is False and other.session is kept
    np.testing.assert_array_equal(other.predict(x), before)


def test_call_sizer_warms_up_then_keeps_the_fastest_size_per_tile():
    sizer = CallSizer(4, rounds=2)
    assert sizer.sizes == [4, 2, 1] and sizer.chosen is None
    # made-up times per tile: 2 tiles per call is the fastest, the warm-up round is slow
    per_tile = {4: 0.012, 2: 0.009, 1: 0.010}
    seen = []
    for call in range(9):
        size = sizer.size(4)
        seen.append(size)
        slow = 10.0 if call < 3 else 1.0
        sizer.record(size, 4, 4 * per_tile[size] * slow)
        if call < 8:
            assert sizer.chosen is None
            # a short batch (end of a row of tiles) runs whole and is not counted
            assert sizer.size(3) == 3
            sizer.record(3, 3, 100.0)
    assert seen == [4, 2, 1] * 3
    assert sizer.per_tile == {4: [0.012] * 2, 2: [0.009] * 2, 1: [0.010] * 2}
    assert sizer.chosen == 2 and sizer.size(4) == 2 and sizer.size(1) == 1
    assert sizer.describe() == (
        "2 tile(s) per session.run (median ms per tile with 4 / 2 / 1 per call: 12.0 / 9.0 / 10.0)"
    )
    sizer.record(2, 4, 100.0)  # chosen: nothing more is measured
    assert sizer.per_tile[2] == [0.009] * 2
    one = CallSizer(1)
    assert one.chosen == 1 and one.describe() == "1 tile(s) per session.run"
    assert "not chosen" in CallSizer(4).describe()


def test_tuned_calls_split_the_batch_and_give_the_same_probabilities(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0, -0.5, 0.25, 2.0], bias=-0.1)
    model = OnnxModel.load(str(path), "cpu")
    opts = model.session.get_session_options()
    assert opts.get_session_config_entry("session.dynamic_block_base") == "4"
    x = np.random.default_rng(2).normal(size=(4, 4, 16, 16)).astype(np.float32)
    whole = model.predict(x)
    assert model.tune_calls(4) is True
    calls = []
    for _ in range(3 * (1 + 3)):  # warm-up + TUNE_ROUNDS, three sizes
        size = model.sizer.size(4)
        before = model.calls
        np.testing.assert_array_equal(model.predict(x), whole)
        calls.append((size, model.calls - before))
    assert calls[:3] == [(4, 1), (2, 2), (1, 4)]
    assert model.sizer.chosen in (4, 2, 1)
    assert all(len(t) == 3 for t in model.sizer.per_tile.values())
    assert model.yield_cpu() is True  # the sleeping session keeps the dynamic blocks
    opts = model.session.get_session_options()
    assert opts.get_session_config_entry("session.dynamic_block_base") == "4"
    np.testing.assert_array_equal(model.predict(x[:3]), whole[:3])


def test_auto_reports_the_provider_that_really_runs(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0] * 4)
    model = OnnxModel.load(str(path), "auto")
    assert model.provider == model.session.get_providers()[0]


def test_cuda_without_working_cuda_is_a_clear_error(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0] * 4)
    try:
        model = OnnxModel.load(str(path), "cuda")
    except ModelError as exc:
        assert "cuda" in str(exc).lower() and "'auto' or 'cpu'" in str(exc)
    else:  # a machine where CUDA works
        assert model.provider == "CUDAExecutionProvider"


def test_unknown_device(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0] * 4)
    with pytest.raises(ModelError, match="device must be one of"):
        OnnxModel.load(str(path), "tpu")


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        OnnxModel.load(str(tmp_path / "nope.onnx"))


def test_corrupt_file_is_refused_naming_the_file(tmp_path):
    path = corrupt_model(tmp_path / "broken.onnx")
    with pytest.raises(ModelError, match=r"broken\.onnx is not a valid ONNX model"):
        OnnxModel.load(str(path))


def test_no_metadata_is_refused(tmp_path):
    path = model_without_metadata(tmp_path / "plain.onnx")
    with pytest.raises(ModelSpecError, match=r"plain\.onnx carries no Arctic Assist metadata"):
        OnnxModel.load(str(path))


def test_invalid_metadata_field_is_named(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0] * 4)
    model = onnx.load(str(path))
    doc = json.loads(model.metadata_props[0].value)
    doc["tile"]["overlap"] = 9999
    model.metadata_props[0].value = json.dumps(doc)
    onnx.save(model, str(path))
    with pytest.raises(ModelSpecError, match=r"tile\.overlap"):
        OnnxModel.load(str(path))


def test_wrong_task_says_what_the_model_is(tmp_path):
    path = contour_spec_model(tmp_path / "front.onnx")
    with pytest.raises(
        ModelError,
        match=r"front\.onnx is a calving-front \(contour\) model; "
        r"detect_thaw_slumps needs a segmentation model",
    ):
        OnnxModel.load(str(path), task="segmentation", tool="detect_thaw_slumps")
    assert OnnxModel.load(str(path)).spec.task == "contour"  # no task asked: loads


def test_too_new_opset_is_refused(tmp_path):
    path = weighted_sum_model(tmp_path / "future.onnx", [1.0] * 4, opset=99)
    with pytest.raises(ModelError, match=r"future\.onnx needs ONNX opset 99.*up to opset \d+"):
        OnnxModel.load(str(path))


def test_max_supported_opset_is_probed():
    import onnxruntime as ort

    limit = max_supported_opset()
    assert 17 <= limit < 99
    if ort.__version__.startswith("1.31"):
        assert limit >= 23


def test_read_spec_without_session(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0] * 4)
    info = read_model_info(str(path))
    assert info.opset == 17 and info.input_name == "image"
    assert read_model_spec(str(path)) == info.spec


def test_output_activation_sigmoid_from_spec(tmp_path):
    spec = make_spec(outputs=(OutputSpec("rts_probability", ("N", 1, "H", "W"), "sigmoid"),))
    path = weighted_sum_model(tmp_path / "logit.onnx", [1.0, 0, 0, 0], spec=spec, sigmoid=False)
    model = OnnxModel.load(str(path), "cpu")
    x = np.full((1, 4, 2, 2), 2.0, np.float32)
    np.testing.assert_allclose(model.predict(x), 1 / (1 + np.exp(-2.0)), atol=1e-6)


def test_missing_output_named_in_metadata(tmp_path):
    spec = make_spec(outputs=(OutputSpec("other"),))
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0] * 4, spec=spec)
    with pytest.raises(ModelError, match="other"):
        OnnxModel.load(str(path))


def _deepness_model(path, n_classes=2):
    """A Deepness-style model: 3 uint8 bands / 255, softmax over classes (last = object)."""
    w = np.zeros((n_classes, 3, 1, 1), np.float32)
    w[-1, 0] = 4.0
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["logits"], kernel_shape=[1, 1]),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "deepness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_classes, "H", "W"])],
        initializer=[onnx.numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            "model_type": json.dumps("Segmentor"),
            "class_names": json.dumps({"0": "bg", "1": "rts"}),
            "resolution": "1000",
            "tiles_size": "64",
            "tiles_overlap": "25",
            "seg_thresh": "0.4",
        },
    )
    onnx.save(model, str(path))
    return path


def test_deepness_fallback_takes_last_class(tmp_path):
    path = _deepness_model(tmp_path / "deepness.onnx")
    model = OnnxModel.load(str(path), "cpu", task="segmentation")
    spec = model.spec
    assert spec.source_format == "deepness" and spec.pixel_size_m == 10.0
    assert spec.tile_size == 64 and spec.tile_overlap == 16 and spec.threshold == 0.4
    x = np.zeros((1, 3, 2, 2), np.float32)
    x[0, 0, 0, 0] = 1.0
    p = model.predict(x)
    assert p.shape == (1, 1, 2, 2)
    e = np.exp(4.0)
    assert p[0, 0, 0, 0] == pytest.approx(e / (1 + e), abs=1e-6)
    assert p[0, 0, 1, 1] == pytest.approx(0.5, abs=1e-6)


def test_metadata_key_is_ours(tmp_path):
    path = weighted_sum_model(tmp_path / "m.onnx", [1.0] * 4)
    props = {p.key for p in onnx.load(str(path)).metadata_props}
    assert METADATA_KEY in props
