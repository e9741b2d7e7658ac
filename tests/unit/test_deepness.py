"""Deepness models load and run: the keys Deepness's code reads, the graph's fixed size.

The model is built the way Deepness's model zoo builds them (``torch.onnx.export`` without
dynamic axes: input fixed to 1 x C x 256 x 256, softmax output; metadata as JSON values).
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx_factory import deepness_zoo_model, write_geotiff
from osgeo import gdal, ogr

from arctic_assist.core.onnx_model import OnnxModel, read_model_spec
from arctic_assist.io.detect import DetectRequest, run_detection

gdal.UseExceptions()
WEIGHTS = [8.0, 8.0, -8.0]
BIAS = -4.0
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def reference(img: np.ndarray) -> np.ndarray:
    """Deepness's preprocessing (x / 255, then (x - mean) / std) and the model, in numpy."""
    x = img.astype(np.float64) / 255.0
    x = (x - np.asarray(MEAN)[:, None, None]) / np.asarray(STD)[:, None, None]
    z = np.tensordot(WEIGHTS, x, axes=1) + BIAS
    return 1.0 / (1.0 + np.exp(-z))


def test_keys_deepness_code_reads_and_fixed_size_wins(tmp_path):
    # metadata says 512 (the key Deepness's code reads), the graph is fixed to 256: 256 wins
    path = deepness_zoo_model(
        tmp_path / "zoo.onnx",
        WEIGHTS,
        BIAS,
        metadata={"tile_size": 512, "standardization_mean": MEAN, "standardization_std": STD},
    )
    spec = read_model_spec(str(path))
    assert spec.source_format == "deepness"
    assert spec.tile_size == 256
    assert spec.tile_overlap == int(256 * 15 / 100 * 2) // 2 == 38
    assert spec.pixel_size_m == 10.0 and spec.threshold == 0.5
    assert spec.classes == ("background", "object") and spec.n_bands == 3
    assert spec.normalization.type == "standardize"
    assert spec.normalization.mean == tuple(MEAN) and spec.normalization.std == tuple(STD)
    assert spec.provenance["deepness_seg_small_segment"] == 7
    model = OnnxModel.load(str(path), "cpu")
    assert model.fixed_batch == 1
    x = np.random.default_rng(0).random((3, 3, 256, 256), dtype=np.float32)
    assert model.tune_calls(4) is False and model.sizer is None  # the graph decides
    p = model.predict(x)  # 3 tiles through a batch-1 graph
    assert p.shape == (3, 1, 256, 256) and model.calls == 3
    z = np.tensordot(WEIGHTS, x.astype(np.float64), axes=([0], [1])) + BIAS
    np.testing.assert_allclose(p[:, 0], 1 / (1 + np.exp(-z)), atol=1e-5)


@pytest.mark.parametrize("key", ["tile_size", "tiles_size"])
def test_dynamic_graph_takes_the_tile_key(tmp_path, key):
    """A dynamic graph: the tile comes from ``tile_size`` (code) or ``tiles_size`` (docs)."""
    meta = {"tile_size": None, key: 320}
    path = deepness_zoo_model(
        tmp_path / "dyn.onnx", WEIGHTS, BIAS, tile=None, batch=None, metadata=meta
    )
    spec = read_model_spec(str(path))
    assert spec.tile_size == 320 and spec.tile_overlap == 48


def test_names_list_per_output(tmp_path):
    path = deepness_zoo_model(
        tmp_path / "n.onnx",
        WEIGHTS,
        BIAS,
        metadata={"class_names": None, "names": [{"0": "bg", "1": "slump"}]},
    )
    assert read_model_spec(str(path)).classes == ("bg", "slump")


def test_detect_with_a_zoo_model(tmp_path):
    """The issue's failure ('Got: 512 Expected: 256'): the zoo model now runs end to end
    over several tiles, with Deepness's exact preprocessing."""
    rng = np.random.default_rng(1)
    img = rng.integers(60, 120, size=(3, 600, 700)).astype(np.uint8)
    img[0:2, 200:260, 300:420] = 230  # bright in red and green, dark in blue: an object
    img[2, 200:260, 300:420] = 20
    src = write_geotiff(
        tmp_path / "rgb.tif",
        img,
        nodata=None,
        geotransform=(500000.0, 10.0, 0.0, 7500000.0, 0.0, -10.0),
    )
    path = deepness_zoo_model(
        tmp_path / "zoo.onnx",
        WEIGHTS,
        BIAS,
        metadata={"standardization_mean": MEAN, "standardization_std": STD},
    )
    out, prob = tmp_path / "o.gpkg", tmp_path / "p.tif"
    res = run_detection(DetectRequest(str(src), str(path), str(out), str(prob)))
    assert res.tiles_run > 4
    p = gdal.Open(str(prob)).ReadAsArray()
    np.testing.assert_allclose(p, reference(img), atol=1e-4)
    ds = ogr.Open(str(out))
    feats = list(ds.GetLayer(0))
    big = [f for f in feats if f.GetField("area_m2") > 1e5]
    assert len(big) == 1 and big[0].GetField("area_m2") == pytest.approx(60 * 120 * 100.0)
