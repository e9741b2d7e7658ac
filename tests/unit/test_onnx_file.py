"""Inference needs onnxruntime and numpy only (issue 14): the plugin reads ONNX files without
the ``onnx`` package (core.onnx_file), and the bundled model loads and detects with ``onnx``
unimportable."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx_factory import (
    corrupt_model,
    deepness_zoo_model,
    model_without_metadata,
    weighted_sum_model,
)

from arctic_assist import about
from arctic_assist.core.onnx_file import (
    OnnxFormatError,
    parse_model,
    probe_model_bytes,
    read_model_file,
)

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "arctic_assist"
DESC = ["B02_blue", "B03_green", "B04_red", "B08_nir"]


def _reference(path: Path) -> dict:
    """What the onnx package reads of the same file, in onnx_file's terms."""
    m = onnx.load(str(path), load_external_data=False)

    def infos(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = [
                (
                    d.dim_value if d.HasField("dim_value") else None,
                    d.dim_param if d.HasField("dim_param") else None,
                )
                for d in t.shape.dim
            ]
            out.append((v.name, t.HasField("shape"), dims))
        return out

    return {
        "ir": m.ir_version,
        "opset": {o.domain: o.version for o in m.opset_import},
        "props": {p.key: p.value for p in m.metadata_props},
        "inits": {t.name for t in m.graph.initializer},
        "inputs": infos(m.graph.input),
        "outputs": infos(m.graph.output),
    }


def _mine(path: Path) -> dict:
    f = read_model_file(str(path))

    def infos(values):
        return [(v.name, v.has_shape, [(d.value, d.param) for d in v.dims]) for v in values]

    return {
        "ir": f.ir_version,
        "opset": f.opset_import,
        "props": f.metadata_props,
        "inits": f.initializers,
        "inputs": infos(f.inputs),
        "outputs": infos(f.outputs),
    }


def _models(tmp_path: Path) -> list[Path]:
    return [
        weighted_sum_model(tmp_path / "ws.onnx", [1.0, -0.5, 0.25, 2.0], bias=-0.1),
        weighted_sum_model(tmp_path / "ws99.onnx", [1.0] * 4, opset=99),
        model_without_metadata(tmp_path / "plain.onnx"),
        deepness_zoo_model(tmp_path / "zoo.onnx", [1.0, 1.0, 1.0], tile=256, batch=1),
        deepness_zoo_model(tmp_path / "zoo_dyn.onnx", [1.0] * 3, tile=None, batch=None),
        *sorted((ROOT / "models").glob("*.onnx")),
    ]


def test_reads_what_the_onnx_package_reads(tmp_path):
    for path in _models(tmp_path):
        assert _mine(path) == _reference(path), path.name


def test_corrupt_and_truncated_files_are_format_errors(tmp_path):
    with pytest.raises(OnnxFormatError):
        read_model_file(str(corrupt_model(tmp_path / "broken.onnx")))
    data = about.bundled_model("segmentation").read_bytes()
    with pytest.raises(OnnxFormatError):
        parse_model(data[: len(data) // 2])


def test_probe_model_is_a_valid_onnx_model():
    model = onnx.load_from_string(probe_model_bytes(17))
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Identity"]
    assert {o.domain: o.version for o in model.opset_import} == {"": 17}
    assert parse_model(probe_model_bytes(999)).default_opset == 999


def _onnx_imports(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(n == "onnx" or n.startswith("onnx.") for n in names):
            lines.append(node.lineno)
    return lines


def test_no_onnx_import_outside_training():
    files = [PKG / "plugin.py", PKG / "deps.py"]
    for room in ("core", "io", "processing", "gui"):
        files += sorted((PKG / room).rglob("*.py"))
    bad = {str(p.relative_to(PKG)): ln for p in files if (ln := _onnx_imports(p))}
    assert not bad, f"'import onnx' on the inference path: {bad}"


BLOCKED = r"""
import json, sys
sys.modules["onnx"] = None  # import onnx now raises ImportError
from arctic_assist import about, deps
from arctic_assist.core.onnx_model import OnnxModel, max_supported_opset
from arctic_assist.io.detect import DetectRequest, run_detection

raster, out = sys.argv[1:3]
path = str(about.bundled_model("segmentation"))
model = OnnxModel.load(path, "cpu", task="segmentation", tool="detect_thaw_slumps")
res = run_detection(DetectRequest(raster, path, out, device="cpu", batch_size=2))
try:
    import onnx  # noqa: F401
    onnx_importable = True
except ImportError:
    onnx_importable = False
print(json.dumps({"opset": model.opset, "limit": max_supported_opset(),
                  "bands": list(model.spec.bands), "n": res.n_features,
                  "tiles": res.tiles_run, "provider": res.provider,
                  "deps": deps.dependency_message(), "onnx_importable": onnx_importable}))
"""


def test_bundled_model_detects_without_the_onnx_package(tmp_path, make_raster):
    raster = make_raster(descriptions=DESC)
    out = tmp_path / "slumps.gpkg"
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(raster), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["onnx_importable"] is False
    assert got["opset"] == 17 and got["limit"] >= 17
    assert got["bands"] == ["B2", "B3", "B4", "B8"]
    assert got["tiles"] > 0 and got["n"] >= 0 and got["provider"] == "CPUExecutionProvider"
    assert got["deps"] is None  # onnx is not a run-time dependency
    assert out.is_file()
