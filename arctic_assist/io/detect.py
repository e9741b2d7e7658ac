"""Thaw-slump detection without QGIS: raster + ONNX model -> GeoPackage of polygons.

:func:`run_detection` is what ``arctic_assist:detect_thaw_slumps`` (and any script) calls:

1. load and check the model (:class:`~arctic_assist.core.onnx_model.OnnxModel`, task
   ``segmentation``), open and check the raster, map the bands;
2. build the processing grid (a VRT: the source pixels, or a warp to the model's pixel size
   and, for a geographic CRS, to the UTM zone) limited to the extent and the mask;
3. stream overlapping tiles through the model (:mod:`arctic_assist.core.tiling`), one
   column panel at a time, each top to bottom; every finished block of blended
   probability goes (in a worker thread) to the probability GeoTIFF when one is asked for
   and to the vectoriser;
4. vectorise while the stream runs (:class:`~arctic_assist.io.vector.Vectoriser`, in its
   own threads, fed the rows in memory): threshold, clean up, label, drop small
   components, polygonise, score, simplify, reproject to the raster's CRS, and write the
   GeoPackage in batches; components cut by panel or window edges are joined exactly.

Every output is written under a temporary name in its own folder and moved into place with
``os.replace`` at the very end; on any error or cancel the temporaries are removed, so
nothing is left at the output paths. Memory is bounded by one row of tiles of one column
panel, a few vectorising windows (plus GDAL's block cache, limited to
:data:`GDAL_CACHE_MB` during the run), whatever the raster size or the number of
polygons. The time of every phase (read, normalise, onnxruntime, blend, write rasters,
vectorise, write features, and what is left after the stream) is logged at the end of the
run and returned in :attr:`DetectResult.timings`.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from ..core import adapt as scene_adapt
from ..core.bands import resolve_bands
from ..core.errors import InputError
from ..core.onnx_model import OnnxModel
from ..core.tiling import sliding_window_stream
from . import leftovers
from .feedback import Feedback
from .raster import (
    GTIFF_TILED,
    GridReader,
    PanelWriter,
    _gdal,
    build_grid,
    check_has_valid_data,
    gdal_cache_limit,
    open_raster,
)
from .vector import Cleanup, FeatureWriter, Vectoriser

LOG = logging.getLogger(__name__)

#: GDAL block cache during a run: a panel's row of tiles needs a few MB of source blocks; a
#: bigger cache only fills up with blocks never read again (128 MB: 682 MB peak at 40k x 40k)
GDAL_CACHE_MB = 64
PROBABILITY_NODATA = -1.0
#: the probability GeoTIFF: Float32, tiled, DEFLATE with the floating-point predictor (level 1
#: with predictor 3 is both smaller and about 3x faster than plain level 6)
PROBABILITY_OPTIONS = [*GTIFF_TILED, "PREDICTOR=3", "ZLEVEL=1"]
TOOL = "detect_thaw_slumps"
#: rows of a vectorising window while streaming (a window is one strip: about one column
#: panel, :data:`~arctic_assist.core.tiling.PANEL_WIDTH` px, wide)
STREAM_WINDOW_ROWS = 512
#: times the stream waits for the vectoriser (it is :data:`~arctic_assist.io.vector.AHEAD`
#: windows behind) before onnxruntime's idle CPU threads stop spinning
#: (:meth:`OnnxModel.yield_cpu`); a model proposing few polygons never waits (the bundled
#: thaw-slump model on a 3012^2 Peel mosaic: 0 times) and keeps the faster spinning threads
YIELD_AFTER = 4


def _temp_options() -> list[str]:
    """Creation options for our own temporaries: fast ZSTD when GDAL has it."""
    gdal = _gdal()
    opts = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    codec = (
        ["COMPRESS=ZSTD", "ZSTD_LEVEL=1"] if "ZSTD" in opts else ["COMPRESS=DEFLATE", "ZLEVEL=1"]
    )
    return ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER", *codec]


@dataclass
class DetectRequest:
    """Inputs of :func:`run_detection` (paths, options; see the module docstring)."""

    raster_path: str
    model_path: str
    output_path: str  # .gpkg, polygons
    probability_path: str | None = None  # optional GeoTIFF
    bands: list[int] | None = None  # 1-based raster band numbers, explicit mapping
    extent: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax (raster CRS)
    mask_path: str | None = None  # OGR polygon file (any CRS) limiting the area
    threshold: float | None = None  # default: the model's
    min_area_m2: float = 0.0
    simplify_m: float = 0.0
    cleanup: Cleanup | None = None  # small segments, holes, majority filter (pixels)
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int = 4
    layer_name: str = "thaw_slumps"
    run_id: str | None = None  # default: a fresh uuid4 hex
    #: scene adaptation (:mod:`arctic_assist.core.adapt`): auto | always | never
    adapt: str = "auto"
    #: subtracted from every band's raw values first (Sentinel-2 from processing baseline
    #: 04.00 on: 1000)
    offset: float = 0.0


@dataclass
class DetectResult:
    """What :func:`run_detection` did."""

    output_path: str
    probability_path: str | None
    n_features: int
    provider: str
    run_id: str
    tiles_run: int
    tiles_skipped: int
    seconds: float
    inference_seconds: float  # sum of session.run times
    #: seconds per phase: before_stream (model loading, checks, grid, outputs, scene
    #: statistics), scene_statistics (ADAPT), read, normalise,
    #: onnxruntime, blend, write_rasters, vectorise,
    #: write_features (all but onnxruntime and blend run in worker threads, overlapping),
    #: spatial_index (the part of write_features that packs the GeoPackage's R-tree),
    #: stream_waited (the stream waiting for the vectoriser's threads to catch up),
    #: after_stream (wall time from the end of the stream to the end) and total
    timings: dict[str, float] = field(default_factory=dict)
    #: how the tiles went to onnxruntime, e.g. "1 tile(s) per session.run (median ms per
    #: tile with 4 / 2 / 1 per call: ...)" (CPU, chosen by timing the first calls); "" else
    calls: str = ""


def _check_output(path: str, what: str, suffixes: tuple[str, ...]) -> str:
    """Absolute output path, after checking its folder exists and is writable."""
    if not path:
        raise InputError(f"{what}: no output path given")
    path = os.path.abspath(os.path.expanduser(path))
    if not path.lower().endswith(suffixes):
        raise InputError(f"{what} must end with {' or '.join(suffixes)}; got '{path}'")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise InputError(
            f"{what}: the folder '{folder}' does not exist (or is not a folder); "
            f"create it or choose another output path."
        )
    probe = os.path.join(folder, f".arctic_assist_write_test_{uuid.uuid4().hex}")
    try:
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise InputError(
            f"{what}: cannot write to the folder '{folder}' ({exc.strerror}); "
            "choose a writable output path."
        ) from exc
    if os.path.isdir(path):
        raise InputError(f"{what}: '{path}' is a folder; give a file name")
    return path


def _temp_name(final: str, run_id: str, tag: str) -> str:
    """Named by process and run, so that a later run removes what a killed one left."""
    return leftovers.temp_name(final, tag, run_id)


def scene_plan(
    grid,
    spec,
    mode: str,
    whole=None,
    is_canceled: Callable[[], bool] | None = None,
    offset: float = 0.0,
) -> scene_adapt.Plan:
    """The scene adaptation of a run (the scene is measured only when the model carries its
    training scenes' band medians and ``mode`` is not ``never``).

    Measured on ``whole`` (the processing grid of the whole raster, without extent and
    mask) when given, else on ``grid``: light and atmosphere belong to the scene, and a
    small extent around a few thaw slumps would otherwise look like another scene.
    """
    stats = None
    if mode != "never" and spec.input_medians is not None:
        g = whole or grid
        reader = GridReader(g, spec)
        reader.offset = offset
        stats = scene_adapt.scene_statistics(
            reader.raw_valid, g.height, g.width, is_canceled=is_canceled
        )
    return scene_adapt.plan(spec.input_medians, stats, mode, spec.bands)


def run_detection(
    req: DetectRequest,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> DetectResult:
    """Detect thaw slumps in ``req.raster_path`` with ``req.model_path`` (see module doc).

    ``progress`` receives 0..100, ``is_canceled`` is polled between batches (a cancel raises
    :class:`CanceledError` and writes nothing), ``log`` receives user-facing messages.
    Raises :class:`InputError` / :class:`ModelError` with one actionable message.
    """
    t_start = time.perf_counter()
    run_id = req.run_id or uuid.uuid4().hex

    feedback = Feedback(progress, is_canceled, log, LOG)
    say, report, check_cancel = feedback.say, feedback.report, feedback.check_cancel

    out_path = _check_output(req.output_path, "OUTPUT", (".gpkg",))
    prob_path = (
        _check_output(req.probability_path, "OUTPUT_PROBABILITY", (".tif", ".tiff"))
        if req.probability_path
        else None
    )
    if req.min_area_m2 < 0 or req.simplify_m < 0:
        raise InputError("MIN_AREA and SIMPLIFY must be >= 0")
    if not (math.isfinite(req.offset) and 0 <= req.offset <= scene_adapt.MAX_OFFSET):
        raise InputError(
            f"OFFSET must be between 0 and {scene_adapt.MAX_OFFSET:g}; got {req.offset!r}"
        )
    if req.adapt not in scene_adapt.MODES:
        raise InputError(f"ADAPT must be one of {', '.join(scene_adapt.MODES)}; got {req.adapt!r}")
    for final in (out_path, prob_path):
        if final:
            leftovers.clean_stale(final, say)
    gdal = _gdal()
    temps: list[str] = []
    grid = None
    ds = None
    with gdal_cache_limit(GDAL_CACHE_MB):
        try:
            model = OnnxModel.load(req.model_path, req.device, task="segmentation", tool=TOOL)
            spec = model.spec
            threshold = spec.threshold if req.threshold is None else float(req.threshold)
            if not 0.0 <= threshold <= 1.0:
                raise InputError(f"THRESHOLD must be between 0 and 1; got {threshold}")
            say(
                f"Model {spec.name} {spec.version} ({os.path.basename(req.model_path)}) on "
                f"{model.provider}; bands {', '.join(spec.bands)}; threshold {threshold:g}"
            )
            ds, info = open_raster(req.raster_path)
            bands = resolve_bands(
                spec.bands, info.descriptions, req.bands, source=os.path.basename(req.raster_path)
            )
            say(f"Raster bands {', '.join(map(str, bands))} -> model bands {', '.join(spec.bands)}")
            check_cancel()
            grid = build_grid(
                ds, info, bands, spec, req.extent, req.mask_path, workdir=os.path.dirname(out_path)
            )
            check_has_valid_data(
                grid,
                spec,
                req.raster_path,
                progress=lambda p: report(0.05 * p),
                is_canceled=is_canceled,
            )
            crs_name = grid.srs.GetName()
            say(
                f"Processing grid {grid.width} x {grid.height} px at "
                f"{grid.pixel_size * grid.metres_per_unit:.2f} m in {crs_name}"
                + (" (resampled)" if grid.warped else " (source pixels)")
            )

            multiple = max(1, spec.multiple_of)
            tile = -(-spec.tile_size // multiple) * multiple
            overlap = min(spec.tile_overlap, tile - 1)

            # --- outputs on the processing grid (temporaries). The probability GeoTIFF is
            # only written when it is asked for: the polygons are made from the rows in
            # memory, while the stream runs
            same_crs = grid.srs.IsSame(info.srs)
            grid_prob = None
            prob_w = None
            if prob_path:
                if same_crs:
                    grid_prob = _temp_name(prob_path, run_id, "part")
                    prob_opts = PROBABILITY_OPTIONS
                else:
                    grid_prob = _temp_name(out_path, run_id, "prob") + ".tif"
                    prob_opts = _temp_options()
                temps.append(grid_prob)
                prob_w = PanelWriter(
                    grid_prob, grid, gdal.GDT_Float32, PROBABILITY_NODATA, options=prob_opts
                )
            attrs = {
                "model": spec.name,
                "model_version": spec.version,
                "provider": model.provider,
                "source": os.path.abspath(req.raster_path),
                "run_id": run_id,
                "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
                "status": "proposed",
            }
            tmp_gpkg = _temp_name(out_path, run_id, "part")
            temps.append(tmp_gpkg)
            writer = FeatureWriter(tmp_gpkg, req.layer_name, info.srs, attrs)
            cell = 256  # where the probability is above the threshold: the vectoriser skips
            positives = np.zeros((-(-grid.height // cell), -(-grid.width // cell)), bool)
            vec = Vectoriser(
                writer,
                shape=(grid.height, grid.width),
                geotransform=grid.geotransform,
                nodata=PROBABILITY_NODATA,
                threshold=threshold,
                metres_per_unit=grid.metres_per_unit,
                grid_srs=grid.srs,
                out_srs=info.srs,
                min_area_m2=req.min_area_m2,
                simplify_m=req.simplify_m,
                cleanup=req.cleanup,
                rows=STREAM_WINDOW_ROWS,
                positives=positives,
                cell=cell,
            )
            t_write = 0.0

            def write(row0: int, col0: int, block: np.ndarray, valid: np.ndarray) -> None:
                nonlocal t_write
                t0 = time.perf_counter()
                p = block[0]
                if prob_w is not None:
                    prob_w.write(row0, col0, p)
                m = p > threshold  # nodata (-1) never is
                if m.any():
                    for a in range(row0 // cell * cell, row0 + m.shape[0], cell):
                        lo, hi = max(a, row0) - row0, min(a + cell, row0 + m.shape[0]) - row0
                        cols = np.flatnonzero(m[lo:hi].any(axis=0))
                        if cols.size:
                            positives[a // cell, np.unique((cols + col0) // cell)] = True
                t_write += time.perf_counter() - t0
                vec.feed(row0, col0, p)  # waits when the vectoriser is AHEAD windows behind

            reader = GridReader(grid, spec)
            if req.offset:
                say(f"OFFSET: {req.offset:g} subtracted from every band first")
            t_adapt = time.perf_counter()
            whole = None
            if (req.extent or req.mask_path) and req.adapt != "never" and spec.input_medians:
                whole = build_grid(ds, info, bands, spec, None, None, os.path.dirname(out_path))
            try:
                plan = scene_plan(grid, spec, req.adapt, whole, is_canceled, req.offset)
            finally:
                if whole is not None:
                    whole.close()
            t_adapt = time.perf_counter() - t_adapt
            if plan.warning:
                feedback.warn(plan.message)
            else:
                say(plan.message)
            reader.offset, reader.adaptation = req.offset, plan.adaptation
            model.reset_timer()
            model.tune_calls(req.batch_size)

            def predict(batch: np.ndarray) -> np.ndarray:
                # Once the stream has had to wait for the vectoriser YIELD_AFTER times (a
                # model proposing polygons everywhere), its threads need the cores that
                # onnxruntime's idle threads spin on: they sleep from then on.
                if vec.stalls >= YIELD_AFTER and model.yield_cpu():
                    say(
                        f"the vectoriser is the bottleneck: onnxruntime's idle threads now "
                        f"sleep (after {model.calls} batches)"
                    )
                return model.predict(batch)

            t_stream_start = time.perf_counter()
            try:
                try:
                    stats = sliding_window_stream(
                        (grid.height, grid.width),
                        tile,
                        overlap,
                        reader,
                        predict,
                        write,
                        out_channels=1,
                        batch_size=req.batch_size,
                        nodata=PROBABILITY_NODATA,
                        progress=lambda p: report(0.9 * p),
                        is_canceled=is_canceled,
                    )
                finally:
                    t0 = time.perf_counter()
                    if prob_w is not None:
                        prob_w.close()
                    t_write += time.perf_counter() - t0
                t_stream_end = time.perf_counter()
                say(
                    f"{stats.tiles_run} tile(s) of {tile} px predicted, {stats.tiles_skipped} "
                    f"skipped (no valid pixel); {model.inference_seconds:.1f} s in onnxruntime"
                    + (f", {model.sizer.describe()}" if model.sizer and model.sizer.chosen else "")
                )
                check_cancel()
                report(90.0)
                vstats = vec.finish()
                report(95.0)
                n = writer.close()
            except BaseException:
                vec.abort()
                writer.abort()
                raise
            say(
                f"{vstats.components} component(s) after clean-up, {n} kept "
                f"(min area {req.min_area_m2:g} m2"
                + (f"; {req.cleanup.describe()}" if req.cleanup else "")
                + ")"
            )
            check_cancel()

            tmp_prob_final = None
            if prob_path:
                if same_crs:
                    tmp_prob_final = grid_prob
                else:  # back to the raster's CRS (and about its resolution)
                    tmp_prob_final = _temp_name(prob_path, run_id, "part")
                    temps.append(tmp_prob_final)
                    gt = info.geotransform
                    gdal.Warp(
                        tmp_prob_final,
                        grid_prob,
                        format="GTiff",
                        dstSRS=info.srs.ExportToWkt(),
                        xRes=abs(gt[1]),
                        yRes=abs(gt[5]),
                        srcNodata=PROBABILITY_NODATA,
                        dstNodata=PROBABILITY_NODATA,
                        resampleAlg="bilinear",
                        creationOptions=PROBABILITY_OPTIONS,
                        outputType=gdal.GDT_Float32,
                    )
            check_cancel()
            report(99.0)
            if tmp_prob_final and prob_path:
                leftovers.remove(prob_path + ".aux.xml")
                os.replace(tmp_prob_final, prob_path)
            os.replace(tmp_gpkg, out_path)
        except BaseException:
            for p in temps:
                leftovers.remove(p)
            raise
        finally:
            if grid is not None:
                grid.close()
            ds = None
            for p in temps:  # the grid-probability and mask temporaries
                if p not in (out_path, prob_path):
                    leftovers.remove(p)
    del ds
    seconds = time.perf_counter() - t_start
    report(100.0)
    timings = {
        "before_stream": t_stream_start - t_start,
        "scene_statistics": t_adapt,
        "read": reader.read_seconds,
        "normalise": reader.normalise_seconds,
        "onnxruntime": model.inference_seconds,
        "blend": stats.blend_seconds,
        "write_rasters": t_write,
        "vectorise": max(0.0, vstats.seconds - vstats.write_seconds),
        "write_features": writer.seconds,
        "spatial_index": writer.index_seconds,
        "stream_waited": vec.stalled_seconds,
        "after_stream": seconds - (t_stream_end - t_start),
        "total": seconds,
    }
    say(
        "Time per phase: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + " (before_stream: loading the model, checking the raster, building the grid and "
        "the outputs, scene_statistics included; scene_statistics: measuring the scene for "
        "ADAPT; read, "
        "normalise, write rasters, vectorise and write features run in worker "
        "threads, overlapping onnxruntime; spatial_index: the part of write_features "
        "packing the GeoPackage's spatial index; stream_waited: the stream waiting for the "
        "vectoriser; after_stream: from the last tile to the end)"
    )
    say(f"{n} proposal(s) written to {out_path} in {seconds:.1f} s (run {run_id})")
    return DetectResult(
        output_path=out_path,
        probability_path=prob_path,
        n_features=n,
        provider=model.provider,
        run_id=run_id,
        tiles_run=stats.tiles_run,
        tiles_skipped=stats.tiles_skipped,
        seconds=seconds,
        inference_seconds=model.inference_seconds,
        timings=timings,
        calls=model.sizer.describe() if model.sizer else "",
    )
