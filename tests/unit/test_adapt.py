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

REF = ((0.2, 0.3, 0.4, 0.5), (0.02, 0.03, 0.04, 0.05))


def stats_of(x: np.ndarray) -> adapt.SceneStatistics:
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    return adapt.SceneStatistics(tuple(flat.mean(1)), tuple(flat.std(1)), flat.shape[1])


def test_adaptation_maps_the_scene_moments_onto_the_reference():
    rng = np.random.default_rng(0)
    ref = np.stack([rng.normal(m, s, (50, 60)) for m, s in zip(*REF)]).astype(np.float32)
    scene = ref * 1.3 + 0.05  # another scene's levels and contrast, same ground
    plan = adapt.plan(REF, stats_of(scene), "auto", ("B2", "B3", "B4", "B8"))
    assert plan.adaptation is not None and not plan.warning
    assert plan.message.startswith("Scene adaptation: on") and "B8" in plan.message
    out = plan.adaptation.apply(scene, np.ones(scene.shape[1:], bool))
    got = stats_of(out)
    assert np.allclose(got.mean, REF[0], atol=1e-5) and np.allclose(got.std, REF[1], rtol=1e-4)
    # invalid pixels keep their value (the nodata fill)
    valid = np.ones(scene.shape[1:], bool)
    valid[:5] = False
    part = plan.adaptation.apply(scene, valid)
    assert np.array_equal(part[:, :5], scene[:, :5]) and not np.array_equal(
        part[:, 5:], scene[:, 5:]
    )


@pytest.mark.parametrize(
    "ratio, adapted", [(1.45, True), (1 / 1.45, True), (1.6, False), (0.6, False)]
)
def test_auto_leaves_another_kind_of_landscape_alone(ratio, adapted):
    std = list(REF[1])
    std[2] *= ratio  # one band's contrast
    scene = adapt.SceneStatistics(REF[0], tuple(std), 10_000)
    plan = adapt.plan(REF, scene, "auto", ("B2", "B3", "B4", "B8"))
    assert (plan.adaptation is not None) is adapted
    if not adapted:
        assert plan.warning and "B4" in plan.message and "ADAPT=always" in plan.message
        assert "B2," not in plan.message.split("band(s)")[1].split("differs")[0]
    forced = adapt.plan(REF, scene, "always")
    assert forced.adaptation is not None and np.isclose(forced.adaptation.gain[2], 1 / ratio)


def test_never_no_statistics_and_too_few_pixels():
    scene = adapt.SceneStatistics(REF[0], REF[1], 10_000)
    assert adapt.plan(REF, scene, "never").adaptation is None
    none = adapt.plan(None, scene, "auto")
    assert none.adaptation is None and not none.warning and "not available" in none.message
    few = adapt.plan(REF, adapt.SceneStatistics(REF[0], REF[1], 10), "auto")
    assert few.adaptation is None and few.warning and "10 valid pixels" in few.message
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


def test_spec_statistics_round_trip_and_validation():
    spec = make_spec(input_statistics=REF)
    doc = json.loads(spec.to_json())
    assert doc["input"]["statistics"] == {"mean": list(REF[0]), "std": list(REF[1])}
    assert validate_metadata(doc).input_statistics == REF
    assert "statistics" not in json.loads(make_spec().to_json())["input"]
    for bad, field in (
        ({"mean": [0.1, 0.2], "std": [1, 1, 1, 1]}, "input.statistics.mean"),
        ({"mean": [0.1] * 4, "std": [1, 1, 0, 1]}, "input.statistics.std"),
        ({"mean": [0.1] * 4, "std": [1, 1, "x", 1]}, "input.statistics.std"),
        ({"mean": [0.1] * 4}, "input.statistics.std"),
    ):
        doc["input"]["statistics"] = bad
        with pytest.raises(ModelSpecError, match=field.replace(".", r"\.")):
            validate_metadata(doc)


# ----------------------------------------------------------------------------- detection

WEIGHTS = [3.0, 3.0, 3.0, 3.0]  # sigmoid(3 * sum(DN * 1e-4) - 3): depends on the levels
BIAS = -3.0


def _scene_reference(raw: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    valid = (raw != 0).all(axis=0)
    x = raw[:, valid].astype(np.float64) * 1e-4
    return tuple(x.mean(1)), tuple(x.std(1))


def _detect(tmp_path: Path, raster: Path, model: Path, mode: str, name: str):
    messages: list[str] = []
    prob = tmp_path / f"{name}.tif"
    run_detection(
        DetectRequest(
            str(raster), str(model), str(tmp_path / f"{name}.gpkg"), str(prob), adapt=mode
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
    norm = Normalization("scale", scale=1e-4, offset=0.0)
    with_stats = weighted_sum_model(
        tmp_path / "m.onnx",
        WEIGHTS,
        BIAS,
        spec=make_spec(normalization=norm, input_statistics=_scene_reference(raw)),
    )
    without = weighted_sum_model(
        tmp_path / "plain.onnx", WEIGHTS, BIAS, spec=make_spec(normalization=norm)
    )
    p_train, msg = _detect(tmp_path, train, with_stats, "auto", "a")
    assert any(m.startswith("Scene adaptation: on") for m in msg)
    p_auto, msg = _detect(tmp_path, brighter, with_stats, "auto", "b")
    assert any("contrast x 1.25" in m for m in msg)
    valid = p_train >= 0
    assert np.abs(p_auto - p_train)[valid].max() < 2e-3  # rounding of the x 1.25 DN only
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
    model = weighted_sum_model(
        tmp_path / "m.onnx",
        WEIGHTS,
        BIAS,
        spec=make_spec(
            normalization=Normalization("scale", scale=1e-4, offset=0.0),
            input_statistics=_scene_reference(raw),
        ),
    )
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
