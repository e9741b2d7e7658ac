"""ONNX export: metadata validated by the plugin's validator, checker, parity, dynamic axes."""

from __future__ import annotations

import os

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from arctic_assist.core.spec import METADATA_KEY, ModelSpecError, validate_metadata  # noqa: E402
from arctic_assist.training.evaluate import build_spec, export_method  # noqa: E402
from arctic_assist.training.export import export_onnx, onnx_session, parity_check, read_spec  # noqa: E402
from arctic_assist.training.methods import TrainConfig, make_method  # noqa: E402
from arctic_assist.training.unet import ProbabilityModel, UNet  # noqa: E402

torch.set_num_threads(1)

META = {
    "bands": ["B2", "B3", "B4", "B8"],
    "dtype": "uint16",
    "normalization": {"type": "pixeldino_logsigmoid", "scale": 0.005, "gain": 2.5, "offset": 2.1},
    "nodata": 0,
    "pixel_size_m": 10.0,
    "training_data": "unit test",
}


def test_export_pixeldino_teacher_with_full_metadata(tmp_path):
    torch.manual_seed(0)
    module = make_method(TrainConfig(method="pixeldino", width=4, tile=32), META)
    with torch.no_grad():  # teacher != student, so we can tell which one was exported
        for p in module.student.parameters():
            p.add_(0.5)
    path, spec = export_method(module, tmp_path / "rts.onnx", metrics={"iou": 0.5}, steps=7)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    props = {p.key: p.value for p in model.metadata_props}
    doc = json.loads(props[METADATA_KEY])
    spec2 = validate_metadata(doc)
    assert spec2.task == "segmentation" and spec2.bands == ("B2", "B3", "B4", "B8")
    assert spec2.dtype == "uint16" and spec2.nodata_value == 0 and spec2.pixel_size_m == 10.0
    assert spec2.normalization.type == "pixeldino_logsigmoid"
    assert (spec2.normalization.scale, spec2.normalization.gain, spec2.normalization.offset) == (
        0.005,
        2.5,
        2.1,
    )
    assert spec2.classes == ("background", "rts") and spec2.threshold == 0.5
    assert spec2.outputs[0].name == "rts_probability" and spec2.outputs[0].activation == "none"
    assert spec2.opset == 17 and spec2.multiple_of == 16
    assert model.opset_import[0].version == 17
    prov = spec2.provenance
    assert prov["method"] == "pixeldino" and prov["steps"] == 7 and prov["metrics"] == {"iou": 0.5}
    assert prov["code_version"] and prov["created"]
    sess = onnx_session(path)
    for shape in [(1, 4, 32, 32), (3, 4, 48, 80)]:  # dynamic batch and space
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        out = sess.run(None, {"image": x})[0]
        assert out.shape == (shape[0], 1, shape[2], shape[3])
        assert out.min() >= 0.0 and out.max() <= 1.0  # sigmoid inside the graph
        with torch.no_grad():
            ref = torch.sigmoid(module.teacher.rts(torch.from_numpy(x))).numpy()
        assert np.abs(out - ref).max() < 1e-4  # the teacher was exported


def test_parity_check_and_atomic_write(tmp_path):
    net = ProbabilityModel(UNet(3, 4, 5)).eval()
    spec = build_spec(
        name="t",
        bands=["r", "g", "b"],
        dtype="uint8",
        normalization={"type": "scale", "scale": 1 / 255, "offset": 0.0},
        nodata=None,
        pixel_size_m=None,
        method="supervised",
        training_data="x",
        steps=1,
    )
    ex = torch.rand(1, 3, 32, 32)
    path = export_onnx(
        net,
        ex,
        spec,
        tmp_path / "a.onnx",
        ["image"],
        ["rts_probability"],
        {"image": {0: "N", 2: "H", 3: "W"}, "rts_probability": {0: "N", 2: "H", 3: "W"}},
    )
    assert parity_check(net, path, torch.rand(2, 3, 64, 48), atol=1e-4) < 1e-4
    assert read_spec(path).name == "t"
    assert [p.name for p in tmp_path.iterdir()] == ["a.onnx"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any new file
    with torch.no_grad():
        net.net.rts_head.bias.add_(1.0)
    with pytest.raises(AssertionError):
        parity_check(net, path, ex, atol=1e-4)


def test_invalid_spec_is_refused_before_writing(tmp_path):
    import dataclasses

    spec = build_spec(
        name="t",
        bands=["a"],
        dtype="uint16",
        normalization={"type": "none"},
        nodata=0,
        pixel_size_m=10.0,
        method="supervised",
        training_data="x",
        steps=1,
    )
    bad = dataclasses.replace(spec, threshold=1.5)
    with pytest.raises(ModelSpecError):
        export_onnx(
            ProbabilityModel(UNet(1, 4, 3)), torch.rand(1, 1, 32, 32), bad, tmp_path / "b.onnx"
        )
    assert not (tmp_path / "b.onnx").exists()


def test_warm_start_from_exported_onnx(tmp_path):
    """BASE_MODEL may be an exported .onnx: its weights (and width) seed the new run."""
    from arctic_assist.training.train import base_model_bands, warm_start

    torch.manual_seed(0)
    source = make_method(TrainConfig(method="pixeldino", width=4, tile=32), META)
    with torch.no_grad():  # trained weights: no two tensors equal (the exporter merges those)
        for p in source.teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path, _ = export_method(source, tmp_path / "base.onnx", steps=3)
    assert base_model_bands(str(path), META["bands"], 16) == (4, ["B2", "B3", "B4", "B8"])
    with pytest.raises(ValueError, match="expects bands B2, B3, B4, B8"):
        base_model_bands(str(path), ["B1", "B2", "B3", "B4"], 16)
    # common names are the same bands; a raster without band descriptions matches by count
    # and the new model keeps the base model's names
    assert base_model_bands(str(path), ["blue", "green", "red", "nir"], 16)[0] == 4
    generic = ["band1", "band2", "band3", "band4"]
    assert base_model_bands(str(path), generic, 16) == (4, ["B2", "B3", "B4", "B8"])
    with pytest.raises(ValueError, match="expects bands"):
        base_model_bands(str(path), generic[:3], 16)

    torch.manual_seed(1)
    fresh = make_method(TrainConfig(method="pixeldino", width=4, tile=32), META)
    x = torch.rand(2, 4, 32, 32)
    with torch.no_grad():
        before = fresh.student.rts(x)
        warm_start(fresh, str(path))
        want = source.teacher.rts(x)
        assert not torch.allclose(before, want)
        assert torch.allclose(fresh.student.rts(x), want, atol=1e-6)
        assert torch.allclose(fresh.teacher.rts(x), want, atol=1e-6)

    wider = make_method(TrainConfig(method="supervised", width=8, tile=32), META)
    with pytest.raises(ValueError, match="does not hold the weights of this network"):
        warm_start(wider, str(path))


def test_warm_start_learning_rate():
    """A warm start fine-tunes at a tenth of the paper's rate; an explicit --lr always wins."""
    from arctic_assist.training.train import WARM_START_LR_FACTOR, build_parser, learning_rate

    paper = TrainConfig().lr
    base = ["--data", "d", "--out", "o.onnx"]
    assert learning_rate(build_parser("pixeldino").parse_args(base)) == paper
    warm = build_parser("pixeldino").parse_args(base + ["--base-model", "m.onnx"])
    assert learning_rate(warm) == pytest.approx(paper * WARM_START_LR_FACTOR)
    assert WARM_START_LR_FACTOR < 1
    both = build_parser("pixeldino").parse_args(base + ["--base-model", "m.onnx", "--lr", "0.002"])
    assert learning_rate(both) == 0.002
