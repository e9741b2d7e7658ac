"""Tiny ONNX models with Arctic Assist metadata, built with ``onnx.helper`` (no torch).

Importable from every test tier (``tests/conftest.py`` puts this folder on ``sys.path``) and
from the benchmarks::

    from onnx_factory import make_spec, weighted_sum_model
    path = weighted_sum_model(tmp_path / "m.onnx", weights=[1, -1, 0, 0.5], bias=0.1)

Also small GeoTIFF builders (:func:`write_geotiff`, :func:`slump_image`) for detection tests.

Every builder writes the spec JSON under ``arctic_assist.core.spec.METADATA_KEY`` and returns
the path. Dimensions are dynamic (batch, height, width).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from arctic_assist.core.spec import (
    METADATA_KEY,
    ContourSpec,
    ModelSpec,
    Normalization,
    OutputSpec,
)

OUTPUT = "rts_probability"


def make_spec(**over: Any) -> ModelSpec:
    """A valid segmentation :class:`ModelSpec` (4 bands B2, B3, B4, B8; overridable)."""
    base: dict[str, Any] = dict(
        name="test_rts",
        version="0.0.1",
        task="segmentation",
        bands=("B2", "B3", "B4", "B8"),
        dtype="uint16",
        normalization=Normalization("scale", scale=1e-4, offset=0.0),
        pixel_size_m=10.0,
        tile_size=32,
        tile_overlap=8,
        classes=("background", "rts"),
        threshold=0.5,
        outputs=(OutputSpec(OUTPUT, ("N", 1, "H", "W"), "none"),),
        input_name="image",
        nodata_value=0,
        nodata_fill=0.0,
        multiple_of=1,
        opset=17,
        description="test model",
        provenance={"method": "test"},
    )
    if over.get("task") == "contour" and "contour" not in over:
        over["contour"] = ContourSpec()
    base.update(over)
    return ModelSpec(**base)


def _save(
    graph: onnx.GraphProto,
    path: Path | str,
    spec: ModelSpec | None,
    opset: int,
    extra_props: dict[str, str] | None = None,
) -> Path:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="arctic_assist.tests"
    )
    model.ir_version = 8
    props = dict(extra_props or {})
    if spec is not None:
        props[METADATA_KEY] = spec.to_json()
    helper.set_model_props(model, props)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def weighted_sum_model(
    path: Path | str,
    weights: Sequence[float],
    bias: float = 0.0,
    spec: ModelSpec | None = None,
    opset: int = 17,
    sigmoid: bool = True,
    output: str = OUTPUT,
    input_name: str = "image",
    extra_props: dict[str, str] | None = None,
    with_metadata: bool = True,
) -> Path:
    """Per-pixel model: ``sigmoid(sum_b w[b] * x[b] + bias)`` (1x1 Conv [+ Sigmoid]).

    The reference in numpy is :func:`weighted_sum_reference`.
    """
    c = len(weights)
    w = numpy_helper.from_array(np.asarray(weights, np.float32).reshape(1, c, 1, 1), "w")
    b = numpy_helper.from_array(np.asarray([bias], np.float32), "b")
    nodes = [
        helper.make_node(
            "Conv", [input_name, "w", "b"], ["logit" if sigmoid else output], kernel_shape=[1, 1]
        )
    ]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["logit"], [output]))
    graph = helper.make_graph(
        nodes,
        "weighted_sum",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", c, "H", "W"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[w, b],
    )
    if spec is None and with_metadata:
        spec = make_spec(
            bands=tuple(f"B{i + 2}" for i in range(c)) if c != 4 else ("B2", "B3", "B4", "B8"),
            outputs=(OutputSpec(output, ("N", 1, "H", "W"), "none"),),
            input_name=input_name,
        )
    return _save(graph, path, spec if with_metadata else None, opset, extra_props)


def weighted_sum_reference(
    x: np.ndarray, weights: Sequence[float], bias: float = 0.0, sigmoid: bool = True
) -> np.ndarray:
    """numpy reference of :func:`weighted_sum_model` for normalised C x H x W input."""
    z = np.tensordot(np.asarray(weights, np.float64), x.astype(np.float64), axes=1) + bias
    return (1.0 / (1.0 + np.exp(-z)) if sigmoid else z).astype(np.float32)


def conv_net_model(
    path: Path | str,
    in_channels: int = 4,
    width: int = 16,
    depth: int = 2,
    spec: ModelSpec | None = None,
    opset: int = 17,
    seed: int = 0,
) -> Path:
    """A small U-Net-like network with real compute (3x3 convs, pool, upsample, skip).

    enc: [conv3x3(width) + relu] x depth -> maxpool 2 -> [conv3x3(2 width) + relu] x depth
    -> resize x2 (nearest) -> concat skip -> conv3x3(width) + relu -> conv1x1(1) -> sigmoid.
    Spatial size must be even. :func:`conv_macs_per_pixel` gives its MACs per input pixel.
    """
    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def conv(x: str, cin: int, cout: int, k: int, name: str, relu: bool = True) -> str:
        w = rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, name + "_w"))
        inits.append(numpy_helper.from_array(np.zeros(cout, np.float32), name + "_b"))
        out = name + "_out"
        nodes.append(
            helper.make_node(
                "Conv", [x, name + "_w", name + "_b"], [out], kernel_shape=[k, k], pads=[k // 2] * 4
            )
        )
        if relu:
            nodes.append(helper.make_node("Relu", [out], [name + "_relu"]))
            return name + "_relu"
        return out

    x, c = "image", in_channels
    for i in range(depth):
        x = conv(x, c, width, 3, f"enc{i}")
        c = width
    skip = x
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[2, 2], strides=[2, 2]))
    x = "pool"
    for i in range(depth):
        x = conv(x, c, 2 * width, 3, f"mid{i}")
        c = 2 * width
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
    nodes.append(helper.make_node("Resize", [x, "", "scales"], ["up"], mode="nearest"))
    nodes.append(helper.make_node("Concat", ["up", skip], ["cat"], axis=1))
    x = conv("cat", 2 * width + width, width, 3, "dec0")
    x = conv(x, width, 1, 1, "head", relu=False)
    nodes.append(helper.make_node("Sigmoid", [x], [OUTPUT]))
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", in_channels, "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=inits,
    )
    if spec is None:
        spec = make_spec(tile_size=192, tile_overlap=48, multiple_of=2)
    return _save(graph, path, spec, opset)


def conv_macs_per_pixel(path: Path | str) -> float:
    """Multiply-accumulates per input pixel of the Conv nodes of a model (pooling-aware for
    models built by :func:`conv_net_model`: a conv after ``pool`` runs at 1/4 of the pixels)."""
    model = onnx.load(str(path))
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    total = 0.0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        cout, cin, kh, kw = shapes[node.input[1]]
        scale = (
            0.25
            if node.name.startswith("mid") or node.input[0].startswith(("pool", "mid"))
            else 1.0
        )
        total += cout * cin * kh * kw * scale
    return total


def model_without_metadata(path: Path | str, channels: int = 4) -> Path:
    """A valid ONNX graph with no Arctic Assist / Deepness metadata."""
    return weighted_sum_model(path, [1.0] * channels, with_metadata=False)


def corrupt_model(path: Path | str) -> Path:
    """A file that is not ONNX (truncated protobuf garbage)."""
    path = Path(path)
    path.write_bytes(b"\x08\x07\x12\x04this is not an onnx model" + bytes(range(256)) * 3)
    return path


def contour_spec_model(path: Path | str, channels: int = 1) -> Path:
    """A graph carrying a *contour* task spec (for wrong-task checks; not a real COBRA)."""
    spec = make_spec(
        task="contour",
        bands=tuple(f"B{i + 1}" for i in range(channels)),
        outputs=(OutputSpec(OUTPUT),),
        classes=("front",),
    )
    return weighted_sum_model(path, [1.0] * channels, spec=spec)


# ----------------------------------------------------------------------------- rasters


def write_geotiff(
    path: Path | str,
    data: np.ndarray,
    *,
    epsg: int | None = 32608,
    geotransform: Sequence[float] = (500000.0, 10.0, 0.0, 7500000.0, 0.0, -10.0),
    nodata: float | None = 0,
    descriptions: Sequence[str] | None = None,
) -> Path:
    """Write a C x H x W array as a GeoTIFF (``epsg=None``: no CRS)."""
    from support import write_raster

    return write_raster(
        Path(path),
        data,
        epsg=epsg,
        nodata=nodata,
        descriptions=list(descriptions) if descriptions else None,
        geotransform=geotransform,
    )


def slump_image(height: int = 120, width: int = 150, seed: int = 0) -> np.ndarray:
    """4-band uint16 DN image: background ~1500, one bright 30 x 40 px block (the 'slump')
    at rows 40..70, cols 50..90, and a band of nodata (0) in the last 10 columns."""
    rng = np.random.default_rng(seed)
    img = rng.integers(1200, 1800, size=(4, height, width)).astype(np.uint16)
    img[:, 40:70, 50:90] = rng.integers(6000, 7000, size=(4, 30, 40))
    img[:, :, width - 10 :] = 0
    return img


def deepness_zoo_model(
    path: Path | str,
    weights: Sequence[float],
    bias: float = 0.0,
    *,
    tile: int | None = 256,
    batch: int | None = 1,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """A segmentation model built the way Deepness's model zoo builds them.

    ``torch.onnx.export`` with a dummy input and no dynamic axes gives a graph fixed to
    ``[batch, C, tile, tile]`` (``None``: that dimension is dynamic); the output is softmax
    class probabilities ``[batch, 2, tile, tile]`` (class 1 = the object, probability
    ``sigmoid(sum_b w[b] x[b] + bias)`` of the normalised input); metadata is added as the
    Deepness docs show, one ``metadata_props`` entry per key with a ``json.dumps`` value.
    """
    import json

    c = len(weights)
    w = np.zeros((2, c, 1, 1), np.float32)
    w[1, :, 0, 0] = weights
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.asarray([0.0, bias], np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["logits"], kernel_shape=[1, 1]),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    n = batch if batch else "batch_size"
    hw = [tile, tile] if tile else ["height", "width"]
    graph = helper.make_graph(
        nodes,
        "deepness_zoo",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, c, *hw])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [n, 2, *hw])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch"
    )
    model.ir_version = 8
    meta = {
        "model_type": "Segmentor",
        "class_names": {0: "background", 1: "object"},
        "resolution": 1000,
        "tile_size": tile or 512,
        "tiles_overlap": 15,
        "seg_thresh": 0.5,
        "seg_small_segment": 7,
    }
    meta.update(metadata or {})
    for key, value in meta.items():
        if value is None:
            continue
        m = model.metadata_props.add()
        m.key = key
        m.value = json.dumps(value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
