"""Scene adaptation: a scene's band statistics matched to the model's training input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import make_spec, slump_image, weighted_sum_model, write_geotiff
from osgeo import gdal

from arctic_assist.core import adapt
from arctic_assist.core.errors import InputError
from arctic_assist.core.spec import ModelSpecError, Normalization, validate_metadata
from arctic_assist.io.detect import DetectRequest, run_detection

gdal.UseExceptions()

REF = (900.0, 800.0, 700.0, 2600.0)  # training medians, raw values
NAMES = ("B2", "B3", "B4", "B8")


def test_gain_brings_the_scene_medians_to_the_training_medians():
    rng = np.random.default_rng(0)
    base = np.stack([rng.normal(m, 0.1 * m, (50, 60)) for m in REF]).clip(1, None)
    scene = np.rint(base * 0.8).astype(np.uint16)  # less light
    scene[:, :12] = 150  # a lake over a fifth of the scene moves the median a few %
    valid = np.ones(scene.shape[1:], bool)
    stats = adapt.scene_statistics(lambda r, c, nr, nc: (scene, valid), *scene.shape[1:])
    assert stats.pixels == scene.shape[1] * scene.shape[2]
    plan = adapt.plan(REF, stats, "auto", NAMES)
    assert plan.adaptation is not None and not plan.warning
    assert plan.message.startswith("Scene adaptation: on") and "B8: median" in plan.message
    assert np.allclose(plan.adaptation.gain, 1 / 0.8, rtol=0.06)
    out = plan.adaptation.apply(scene, valid)
    assert out.dtype == np.uint16
    land = out[:, 12:].reshape(4, -1)
    assert np.allclose(
        np.median(land, axis=1), np.median(base[:, 12:].reshape(4, -1), axis=1), rtol=0.06
    )


def test_apply_keeps_invalid_pixels_types_and_nodata_apart():
    raw = np.full((2, 4, 5), 100, np.uint16)
    raw[:, 0] = 0  # nodata row
    valid = np.ones((4, 5), bool)
    valid[0] = False
    out = adapt.Adaptation((3.0, 0.001)).apply(raw, valid, [0, 0])
    assert np.array_equal(out[:, 0], raw[:, 0])  # invalid: untouched
    assert (out[0, 1:] == 300).all()
    assert (out[1, 1:] == 1).all()  # 0.1 rounds to 0, the nodata value: one step away
    big = adapt.Adaptation((1000.0, 1.0)).apply(raw, np.ones((4, 5), bool))
    assert big[0, 1:].max() == 65535  # clipped to the type, not wrapped
    flt = adapt.Adaptation((0.5, 2.0)).apply(raw.astype(np.float32), np.ones((4, 5), bool))
    assert flt.dtype == np.float32 and flt[0, 1, 0] == 50.0 and flt[1, 1, 0] == 200.0


@pytest.mark.parametrize("gain, adapted", [(2.4, True), (0.42, True), (2.6, False), (0.38, False)])
def test_auto_leaves_another_kind_of_landscape_alone(gain, adapted):
    med = list(REF)
    med[2] = REF[2] / gain  # one band needs this gain
    scene = adapt.SceneStatistics(tuple(med), 10_000)
    plan = adapt.plan(REF, scene, "auto", NAMES)
    assert (plan.adaptation is not None) is adapted
    if not adapted:
        assert plan.warning and "band(s) B4 would need" in plan.message
        assert "set ADAPT to always" in plan.message
    forced = adapt.plan(REF, scene, "always")
    assert forced.adaptation is not None and np.isclose(forced.adaptation.gain[2], gain)


def test_never_no_statistics_and_too_few_pixels():
    scene = adapt.SceneStatistics(REF, 10_000)
    assert adapt.plan(REF, scene, "never").adaptation is None
    none = adapt.plan(None, scene, "auto")
    assert none.adaptation is None and not none.warning and "not available" in none.message
    few = adapt.plan(REF, adapt.SceneStatistics(REF, 10), "auto")
    assert few.adaptation is None and few.warning and "10 valid pixels" in few.message
    zero = adapt.plan(REF, adapt.SceneStatistics((0.0, 1.0, 1.0, 1.0), 10_000), "always")
    assert zero.adaptation is None and "band 1" in zero.message
    with pytest.raises(ValueError, match="auto, always, never"):
        adapt.plan(REF, scene, "sometimes")


@pytest.mark.parametrize("shape", [(100, 80), (3000, 500), (100_000, 70_000)])
def test_the_sample_is_bounded_and_inside_the_area(shape):
    h, w = shape
    wins = adapt.windows(h, w)
    total = sum(nr * nc for _, _, nr, nc in wins)
    assert total <= 1.2 * adapt.SAMPLE_PIXELS
    assert all(0 <= r and 0 <= c and r + nr <= h and c + nc <= w for r, c, nr, nc in wins)
    if h * w <= adapt.SAMPLE_PIXELS:
        assert total == h * w  # a small area is measured whole
    else:
        rows = {r for r, _, _, _ in wins}
        cols = {c for _, c, _, _ in wins}
        assert len(rows) >= 3 and len(cols) >= 3  # spread over the area, not one corner
        assert max(rows) + adapt.WINDOW >= h - 1 and max(cols) + adapt.WINDOW >= w - 1


def test_spec_medians_round_trip_and_validation():
    spec = make_spec(input_medians=REF)
    doc = json.loads(spec.to_json())
    assert doc["input"]["statistics"] == {"median": list(REF)}
    assert validate_metadata(doc).input_medians == REF
    assert "statistics" not in json.loads(make_spec().to_json())["input"]
    assert spec.card()["scene adaptation"].endswith("B2 900, B3 800, B4 700, B8 2600")
    assert make_spec().card()["scene adaptation"].startswith("not available")
    for bad in ({"median": [1.0, 2.0]}, {"median": [1.0, 2.0, 0.0, 4.0]}, {"median": "x"}, {}):
        doc["input"]["statistics"] = bad
        with pytest.raises(ModelSpecError, match=r"input\.statistics\.median"):
            validate_metadata(doc)


# ----------------------------------------------------------------------------- detection

WEIGHTS = [3.0, 3.0, 3.0, 3.0]  # sigmoid(3 * sum(DN * 1e-4) - 3): depends on the levels
BIAS = -3.0


def _scene_reference(raw: np.ndarray) -> tuple[float, ...]:
    valid = (raw != 0).all(axis=0)
    return tuple(float(v) for v in np.median(raw[:, valid].astype(np.float64), axis=1))


def _adapting_model(path: Path, raw: np.ndarray) -> Path:
    """The weighted-sum model carrying ``raw``'s band medians as its training scene's."""
    norm = Normalization("scale", scale=1e-4, offset=0.0)
    return weighted_sum_model(
        path, WEIGHTS, BIAS, spec=make_spec(normalization=norm, input_medians=_scene_reference(raw))
    )


def _detect(tmp_path: Path, raster: Path, model: Path, mode: str, name: str, offset: float = 0.0):
    messages: list[str] = []
    prob = tmp_path / f"{name}.tif"
    run_detection(
        DetectRequest(
            str(raster),
            str(model),
            str(tmp_path / f"{name}.gpkg"),
            str(prob),
            adapt=mode,
            offset=offset,
        ),
        log=messages.append,
    )
    return gdal.Open(str(prob)).ReadAsArray(), messages


def test_detection_sees_a_brighter_scene_as_the_training_scene(tmp_path):
    raw = slump_image()
    train = write_geotiff(tmp_path / "train.tif", raw)
    brighter = write_geotiff(
        tmp_path / "bright.tif", np.where(raw > 0, np.round(raw * 1.25), 0).astype(np.uint16)
    )
    with_stats = _adapting_model(tmp_path / "m.onnx", raw)
    norm = Normalization("scale", scale=1e-4, offset=0.0)
    without = weighted_sum_model(
        tmp_path / "plain.onnx", WEIGHTS, BIAS, spec=make_spec(normalization=norm)
    )
    p_train, msg = _detect(tmp_path, train, with_stats, "auto", "a")
    assert any(m.startswith("Scene adaptation: on") for m in msg)
    p_auto, msg = _detect(tmp_path, brighter, with_stats, "auto", "b")
    assert any("-> x 0.800" in m for m in msg)
    valid = p_train >= 0
    assert np.abs(p_auto - p_train)[valid].max() < 2e-3  # rounding of the DN only
    p_never, msg = _detect(tmp_path, brighter, with_stats, "never", "c")
    assert any("Scene adaptation: off" in m for m in msg)
    assert np.abs(p_never - p_train)[valid].max() > 0.05
    p_plain, msg = _detect(tmp_path, brighter, without, "auto", "d")
    assert any("not available" in m for m in msg)
    assert np.array_equal(p_plain, p_never)


def test_bad_adapt_mode_is_one_clear_error(tmp_path):
    raster = write_geotiff(tmp_path / "r.tif", slump_image())
    model = weighted_sum_model(tmp_path / "m.onnx", WEIGHTS, BIAS)
    out = tmp_path / "o.gpkg"
    with pytest.raises(InputError, match="ADAPT must be one of auto, always, never"):
        run_detection(DetectRequest(str(raster), str(model), str(out), adapt="maybe"))
    assert not out.exists()


def test_an_extent_is_adapted_with_the_whole_scene(tmp_path):
    """Light belongs to the scene: a small extent around the slump is measured on the whole
    raster (its pixel count in the log), so it gets the whole scene's adaptation."""
    raw = slump_image()
    raster = write_geotiff(tmp_path / "s.tif", raw)
    model = _adapting_model(tmp_path / "m.onnx", raw)
    valid_pixels = int((raw != 0).all(axis=0).sum())

    def adaptation_line(**kw) -> str:
        messages: list[str] = []
        run_detection(
            DetectRequest(str(raster), str(model), str(tmp_path / "o.gpkg"), **kw),
            log=messages.append,
        )
        return next(m for m in messages if m.startswith("Scene adaptation"))

    whole = adaptation_line()
    assert f"{valid_pixels} pixels" in whole
    # rows 35..75, cols 45..95 of the 10 m grid at x0 = 500000, y0 = 7500000
    part = adaptation_line(extent=(500450.0, 7499250.0, 500950.0, 7499650.0))
    assert part == whole


def test_offset_is_subtracted_before_the_model_and_the_measurement(tmp_path):
    """OFFSET takes a scene whose digital numbers carry +1000 (Sentinel-2 from 2022 on)
    back to the original values: the same probabilities, adapted or not; and the scene is
    measured after the subtraction (gain x 1.000)."""
    raw = slump_image()
    shifted = np.where(raw > 0, raw + 1000, 0).astype(np.uint16)
    plain = write_geotiff(tmp_path / "plain.tif", raw)
    offset_raster = write_geotiff(tmp_path / "offset.tif", shifted)
    model = _adapting_model(tmp_path / "m.onnx", raw)
    want, _ = _detect(tmp_path, plain, model, "auto", "want")

    def run(mode: str, name: str, value: float):
        return _detect(tmp_path, offset_raster, model, mode, name, value)

    valid = want >= 0
    for mode in ("auto", "never"):
        got, msg = run(mode, f"o_{mode}", 1000.0)
        assert np.abs(got - want)[valid].max() < 1e-6, mode
        assert any(m == "OFFSET: 1000 subtracted from every band first" for m in msg)
    _, msg = run("auto", "o_gain", 1000.0)
    assert any("-> x 1.000" in m for m in msg)
    without, _ = run("never", "no_offset", 0.0)
    assert np.abs(without - want)[valid].max() > 0.05
    with pytest.raises(InputError, match="OFFSET must be between 0 and"):
        run("auto", "bad", -1.0)
