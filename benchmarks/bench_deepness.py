"""Benchmark: Deepness's segmentation side by side with Arctic Assist's detection (CPU).

Same raster, same network, same weights, same threshold:

- the raster is ``bench_vectorise``'s 2048 px 4-band uint8 noise tile, mosaicked by a VRT
  to ``--size`` px (1 m pixels, EPSG:32633);
- the model is ``bench_vectorise.unet``: the random-weight U-Net-like graph
  (``tests/onnx_factory.conv_net_model``, seed 3) with Arctic Assist metadata (256 px
  tiles, 38 px overlap, threshold = the 75th percentile of its output on the noise, so a
  quarter of the pixels are foreground);
- the Deepness copy of that model (:func:`deepness_model`) is the *same graph and
  initializers*, with the input fixed the way Deepness's model zoo exports it
  (``[1, 4, 256, 256]``: torch.onnx.export without dynamic axes) and the Deepness
  metadata keys (one ``metadata_props`` entry per key, ``json.dumps`` values):
  ``model_type`` "Segmentor", ``class_names``, ``resolution`` (cm/px), ``tile_size``,
  ``tiles_overlap`` (%), ``seg_thresh`` (= Arctic Assist's threshold, the exact float) and
  ``seg_small_segment``. Its output is either the single sigmoid channel ``[1, 1, H, W]``
  (``--deepness-output sigmoid``, default: Deepness's ``Segmentor`` treats a 1-channel
  output as background/object and keeps the pixels with ``p >= seg_thresh``), or
  ``[1 - p, p]`` (``two_class``: like a zoo model's softmax output; Deepness zeroes the
  probabilities below the threshold and takes the argmax, which means ``p >= seg_thresh``
  only when the threshold is >= 0.5, so it is refused below that).

Each measurement runs in a fresh subprocess (``QT_QPA_PLATFORM=offscreen``,
``GDAL_CACHEMAX=256``, CPU execution provider only), the two tools alternately (ABBA
order), ``--repeat`` times:

- Deepness (PUTvision/qgis-plugin-deepness, its real code from ``src/deepness`` next to
  this script): a ``QgsApplication`` without GUI, the raster as a ``QgsRasterLayer``, the
  ``Segmentor``, the ``SegmentationParameters`` filled from the model's metadata as the
  dock widget's "Load default parameters" does, and ``MapProcessorSegmentation.run()``
  (what its ``QgsTask`` runs in the background): tiling, inference, threshold + argmax,
  the median filter of size ``seg_small_segment``, ``cv2.findContours`` and the
  conversion of every contour to a ``QgsFeature`` in one memory layer *per class*
  (background included). Timed: model load + processor set-up + ``run()`` ("wall"),
  ``run()`` alone, and the time inside ``InferenceSession.run`` (the model's session is
  wrapped from outside; no Deepness code is changed). Adding the layers to the project
  (the GUI-thread delegate) is timed apart and left out of the wall time.
- Arctic Assist: ``run_detection`` as ``bench_vectorise``'s child calls it (batch 4,
  ``DEFAULT_CLEANUP``; ``device="cpu"``), writing a GeoPackage; wall time measured around
  the call (model load included), ORT time from the run.

The last table gives, per tool, the median wall time, ORT time, peak RSS (``VmHWM``) and
polygons, and ``Deepness wall / Arctic Assist wall`` = throughput Arctic Assist / Deepness.

Deepness is not part of this project and is never installed by it: point the benchmark at
a checkout of it and at a folder with OpenCV (Deepness's dependency); without them it
prints "skipped" and exits 0 (``make bench``)::

    git clone https://github.com/PUTvision/qgis-plugin-deepness /tmp/deepness  # f450c63 (0.6.5)
    .venv/bin/pip install --target /tmp/deepness-site --no-deps \
        opencv-python-headless==4.9.0.80
    export DEEPNESS_SRC=/tmp/deepness/src DEEPNESS_SITE=/tmp/deepness-site
    .venv/bin/python benchmarks/bench_deepness.py --size 2048          # smoke (30 s)
    .venv/bin/python benchmarks/bench_deepness.py --size 8192 --repeat 2
    ... --match-cleanup    # Arctic Assist with Deepness's median filter instead of its own
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AA_REPO = HERE.parent
#: the ``src`` folder of a Deepness checkout (holds the ``deepness`` package)
DEEPNESS_SRC = Path(os.environ.get("DEEPNESS_SRC", "/nonexistent"))
#: a folder with OpenCV (``pip install --target``); empty: OpenCV importable already
CV2_SITE = Path(os.environ.get("DEEPNESS_SITE", "") or HERE)
for p in (AA_REPO / "tests", AA_REPO / "benchmarks", AA_REPO):
    sys.path.insert(0, str(p))

TILE = 256
OVERLAP_PCT = 15  # Deepness's default; int(256 * 15 / 100 * 2) // 2 = 38 px = Arctic Assist's
#: Deepness's default "remove small segments" size (ConfigEntryKey
#: environment variable carrying ``--aa-min-area`` to the Arctic Assist child
MIN_AREA_ENV = "BENCH_DEEPNESS_AA_MIN_AREA"
#: SEGMENTATION_REMOVE_SMALL_SEGMENT_SIZE, checked by default): a median filter of 9 x 9 px
DEEPNESS_DEFAULT_SMALL_SEGMENT = 9


# ------------------------------------------------------------------------------ inputs


def aa_threshold(model_path: Path) -> float:
    """The threshold in Arctic Assist's metadata of ``model_path``."""
    import onnx
    from arctic_assist.core.spec import METADATA_KEY

    props = {p.key: p.value for p in onnx.load(str(model_path)).metadata_props}
    return float(json.loads(props[METADATA_KEY])["threshold"])


def deepness_model(
    aa_model: Path, path: Path, output: str, small_segment: int, batch: int | None = 1
) -> Path:
    """The Deepness version of ``aa_model``: same graph and weights, input fixed to
    ``[batch, C, 256, 256]`` (``batch=None``: dynamic), Deepness metadata."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    threshold = aa_threshold(aa_model)
    model = onnx.load(str(aa_model))
    g = model.graph
    (inp,) = g.input
    (out,) = g.output
    n_in = inp.type.tensor_type.shape.dim[1].dim_value
    n = batch if batch else "batch_size"
    g.input.remove(inp)
    g.input.append(
        helper.make_tensor_value_info(inp.name, TensorProto.FLOAT, [n, n_in, TILE, TILE])
    )
    g.output.remove(out)
    if output == "sigmoid":
        g.output.append(
            helper.make_tensor_value_info(out.name, TensorProto.FLOAT, [n, 1, TILE, TILE])
        )
        class_names = {0: "object"}  # Deepness adds "background" for a 1-channel sigmoid output
    elif output == "two_class":
        if threshold < 0.5:
            raise SystemExit(
                f"--deepness-output two_class: the threshold {threshold:.4f} is < 0.5, where "
                "Deepness's argmax of [1-p, p] would keep p > 0.5, not p >= threshold"
            )
        g.initializer.append(numpy_helper.from_array(np.ones((1,), np.float32), "one"))
        g.node.append(helper.make_node("Sub", ["one", out.name], ["background_prob"]))
        g.node.append(helper.make_node("Concat", ["background_prob", out.name], ["output"], axis=1))
        g.output.append(
            helper.make_tensor_value_info("output", TensorProto.FLOAT, [n, 2, TILE, TILE])
        )
        class_names = {0: "background", 1: "object"}
    else:
        raise ValueError(output)
    del model.metadata_props[:]
    meta = {
        "model_type": "Segmentor",
        "class_names": class_names,
        "resolution": 100,  # cm per pixel: the raster's 1 m
        "tile_size": TILE,
        "tiles_overlap": OVERLAP_PCT,
        "seg_thresh": threshold,
        "seg_small_segment": small_segment,
    }
    for key, value in meta.items():
        m = model.metadata_props.add()
        m.key, m.value = key, json.dumps(value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def check_same_network(aa_model: Path, dn_model: Path, tile: Path) -> None:
    """Both files give the same probability on the first tile of the noise."""
    import numpy as np
    import onnxruntime as ort
    from osgeo import gdal

    x = gdal.Open(str(tile)).ReadAsArray(0, 0, TILE, TILE).astype(np.float32)[None] / 255.0
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    a = ort.InferenceSession(str(aa_model), so, providers=["CPUExecutionProvider"])
    d = ort.InferenceSession(str(dn_model), so, providers=["CPUExecutionProvider"])
    pa = a.run(None, {a.get_inputs()[0].name: x})[0]
    pd = d.run(None, {d.get_inputs()[0].name: x})[0]
    pd = pd[:, -1:]  # the object channel
    diff = float(np.abs(pa - pd).max())
    if diff > 1e-5:
        raise SystemExit(f"the Deepness model differs from Arctic Assist's by {diff}")


# ------------------------------------------------------------------------------ children


def vm_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def timed(func, totals: dict, key: str):
    """``func`` adding its seconds to ``totals[key]`` (to time Deepness's phases from outside)."""

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - t0

    return wrapper


class TimedSession:
    """Wraps an onnxruntime InferenceSession; adds up the seconds inside ``run``."""

    def __init__(self, sess) -> None:
        self._sess, self.seconds, self.calls = sess, 0.0, 0

    def run(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._sess.run(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __getattr__(self, name):
        return getattr(self._sess, name)


def child_deepness(raster: str, model_path: str, batch: int, save_mask: str | None = None) -> dict:
    sys.path.insert(0, str(CV2_SITE))
    sys.path.insert(0, str(DEEPNESS_SRC))
    import inspect
    import io
    from contextlib import redirect_stdout
    from unittest.mock import MagicMock

    import numpy as np
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    qgs = QgsApplication([], False)
    qgs.setPrefixPath(os.environ.get("QGIS_PREFIX_PATH", "/usr"), True)
    qgs.initQgis()

    import cv2  # noqa: F401  (Deepness imports it lazily; import it before the clock starts)
    import onnxruntime

    # CPU only, like Arctic Assist's device="cpu": Deepness asks for CUDA first and has no
    # switch; filter its provider list from outside (also spares the failed CUDA load of
    # onnxruntime-gpu on a machine without CUDA, which a CPU-only install never attempts)
    session_class = onnxruntime.InferenceSession

    def cpu_session(*a, providers=None, **kw):
        return session_class(*a, providers=["CPUExecutionProvider"], **kw)

    onnxruntime.InferenceSession = cpu_session
    from deepness.common.channels_mapping import ChannelsMapping, ImageChannelStandaloneBand
    from deepness.common.processing_overlap import ProcessingOverlap, ProcessingOverlapOptions
    from deepness.common.processing_parameters.map_processing_parameters import ProcessedAreaType
    from deepness.common.processing_parameters.segmentation_parameters import (
        SegmentationParameters,
    )
    from deepness.processing import processing_utils
    from deepness.processing.map_processor.map_processing_result import (
        MapProcessingResultSuccess,
    )
    from deepness.processing.map_processor.map_processor_segmentation import (
        MapProcessorSegmentation,
    )
    from deepness.processing.models.segmentor import Segmentor

    # phases of run(), timed by wrapping from outside: reading a tile (QGIS raster block per
    # band) and vectorising (findContours + QgsFeatures + memory layers)
    phases: dict[str, float] = {}
    processing_utils.get_tile_image = timed(processing_utils.get_tile_image, phases, "read")
    MapProcessorSegmentation._create_vlayer_from_mask_for_base_extent = timed(
        MapProcessorSegmentation._create_vlayer_from_mask_for_base_extent, phases, "vectorise"
    )

    base_rss = vm_kb("VmRSS")
    t0 = time.perf_counter()
    # -- what the dock widget does: load the model, "Load default parameters", map bands
    model = Segmentor(model_path)
    model.sess = TimedSession(model.sess)
    rlayer = QgsRasterLayer(raster, "noise")
    assert rlayer.isValid() and rlayer.width() > 0, raster
    QgsProject.instance().addMapLayer(rlayer)
    mapping = ChannelsMapping()  # as Deepness's input_channels_mapping_widget.set_rlayer
    mapping.set_image_channels(
        [
            ImageChannelStandaloneBand(band_number=b + 1, name=f"band{b + 1}")
            for b in range(rlayer.bandCount())
        ]
    )
    mapping.set_number_of_model_inputs_same_as_image_channels()
    fixed_batch = model.get_model_batch_size()
    thr = model.get_metadata_segmentation_threshold()
    small = model.get_metadata_segmentation_small_segment()
    params = SegmentationParameters(
        resolution_cm_per_px=model.get_metadata_resolution(),
        tile_size_px=model.get_metadata_tile_size(),
        batch_size=fixed_batch or batch,
        local_cache=False,  # Deepness's default
        processed_area_type=ProcessedAreaType.ENTIRE_LAYER,
        mask_layer_id=None,
        input_layer_id=rlayer.id(),
        input_channels_mapping=mapping,
        postprocessing_dilate_erode_size=small,  # checkBox_removeSmallAreas: small != 0
        processing_overlap=ProcessingOverlap(
            ProcessingOverlapOptions.OVERLAP_IN_PERCENT,
            percentage=model.get_metadata_tiles_overlap(),
        ),
        pixel_classification__probability_threshold=thr,  # checkBox enabled: thr != 0
        model=model,
    )
    processor = MapProcessorSegmentation(
        rlayer=rlayer, vlayer_mask=None, map_canvas=MagicMock(), params=params
    )
    t_setup = time.perf_counter()
    log = io.StringIO()  # its per-tile progress prints
    with redirect_stdout(log):
        processor.run()
    t_run = time.perf_counter()
    result = processor._processing_result
    if not isinstance(result, MapProcessingResultSuccess):
        raise RuntimeError(
            f"Deepness failed: {result.message} {getattr(result, 'exception', '')!r}"
        )
    vlayers = inspect.getclosurevars(result.gui_delegate).nonlocals["vlayers"]
    counts = {v.name(): v.featureCount() for layers in vlayers for v in layers}
    t1 = time.perf_counter()
    result.gui_delegate()  # what MapProcessor.finished() does in the GUI thread
    t_gui = time.perf_counter() - t1
    img = processor.get_result_img()
    if save_mask:
        np.save(save_mask, np.asarray(img[0]))
    data = {
        "tool": "Deepness",
        "seconds": t_run - t0,
        "run_seconds": t_run - t_setup,
        "setup_seconds": t_setup - t0,
        "inference_seconds": model.sess.seconds,
        "session_runs": model.sess.calls,
        "provider": model.sess.get_providers()[0],
        "tiles": processor.x_bins_number * processor.y_bins_number,
        "batch_size": params.batch_size,
        "threshold": thr,
        "median_filter": int(small // 2) * 2 + 1,
        "peak_rss_mb": vm_kb("VmHWM") / 1024,
        "base_rss_mb": base_rss / 1024,
        "features": counts.get(model.get_channel_name(0, 1), 0),
        "features_per_layer": counts,
        "foreground_fraction": float(np.count_nonzero(img == 2) / img.size),
        "add_to_project_seconds": t_gui,
        "phases": {**phases, "onnxruntime": model.sess.seconds},
    }
    return data


def child_aa(
    raster: str, model_path: str, out: str, median: int, probability: str | None = None
) -> dict:
    from arctic_assist.io.detect import DetectRequest, run_detection
    from arctic_assist.io.vector import DEFAULT_CLEANUP, Cleanup

    cleanup = Cleanup(filter_size=median) if median else DEFAULT_CLEANUP
    min_area = float(os.environ.get(MIN_AREA_ENV, "0"))
    base_rss = vm_kb("VmRSS")
    t0 = time.perf_counter()
    res = run_detection(
        DetectRequest(
            raster,
            model_path,
            out,
            probability,
            batch_size=4,
            cleanup=cleanup,
            device="cpu",
            min_area_m2=min_area,
        )
    )
    seconds = time.perf_counter() - t0
    return {
        "tool": "Arctic Assist",
        "seconds": seconds,
        "run_seconds": res.seconds,
        "inference_seconds": res.inference_seconds,
        "provider": res.provider,
        "tiles": res.tiles_run,
        "batch_size": 4,
        "calls": res.calls,
        "cleanup": cleanup.describe() + (f", MIN_AREA {min_area:g} m2" if min_area else ""),
        "peak_rss_mb": vm_kb("VmHWM") / 1024,
        "base_rss_mb": base_rss / 1024,
        "features": res.n_features,
        "timings": res.timings,
    }


def measure(kind: str, args: list[str], result: Path) -> dict:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "GDAL_CACHEMAX": "256",
    }
    cmd = [sys.executable, __file__, f"--child-{kind}", *args, "--result", str(result)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"{kind} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    data = json.loads(result.read_text())
    result.unlink()
    return data


def verify(work: Path, raster: Path, aa_model: Path, output: str, batch: int) -> None:
    """Untimed: Deepness's class image with no median filter vs Arctic Assist's blended
    probability > threshold (no clean-up), pixel by pixel. They may differ only where
    tiles overlap (Deepness keeps each tile's centre, Arctic Assist blends) and at
    ``p == threshold`` (Deepness keeps ``p >= t``, Arctic Assist ``p > t``)."""
    import numpy as np
    from osgeo import gdal

    dn0 = deepness_model(
        aa_model,
        work / "unet_noise_deepness_nofilter.onnx",
        output,
        0,
        batch=None if batch > 1 else 1,
    )
    mask, prob = work / "dn_mask.npy", work / "aa_prob.tif"
    d = measure(
        "deepness", [str(raster), str(dn0), str(batch), "--save-mask", str(mask)], work / "dn.json"
    )
    a = measure(
        "aa",
        [str(raster), str(aa_model), str(work / "aa.gpkg"), "1", "--probability", str(prob)],
        work / "aa.json",
    )
    (work / "aa.gpkg").unlink(missing_ok=True)
    fg_dn = np.load(mask) == 2
    p = gdal.Open(str(prob)).ReadAsArray()
    fg_aa = p > aa_threshold(aa_model)
    if fg_dn.shape != fg_aa.shape:
        print(f"verify: shapes differ: Deepness {fg_dn.shape}, Arctic Assist {fg_aa.shape}")
        return
    diff = fg_dn != fg_aa
    print(
        f"verify (no clean-up): foreground Deepness {100 * fg_dn.mean():.2f} %, Arctic Assist "
        f"{100 * fg_aa.mean():.2f} %; pixels that differ {100 * diff.mean():.3f} % "
        f"({int(diff.sum())}); polygons Deepness {d['features']} "
        f"(+{d['features_per_layer'].get('background', 0)} background), "
        f"Arctic Assist {a['features']}",
        flush=True,
    )
    mask.unlink()
    prob.unlink()


# ------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048, help="raster size in px (square)")
    ap.add_argument("--repeat", type=int, default=1, help="measurements per tool (alternated)")
    ap.add_argument("--workdir", help="keep inputs here (default: a temporary folder)")
    ap.add_argument("--deepness-output", choices=("sigmoid", "two_class"), default="sigmoid")
    ap.add_argument(
        "--deepness-batch",
        type=int,
        default=1,
        help="1: the graph fixed to batch 1 as Deepness's zoo exports; N > 1: dynamic, run with N",
    )
    ap.add_argument(
        "--small-segment",
        type=int,
        default=DEEPNESS_DEFAULT_SMALL_SEGMENT,
        help="seg_small_segment in the Deepness metadata (its median filter; 0: off)",
    )
    ap.add_argument(
        "--match-cleanup",
        action="store_true",
        help="Arctic Assist with a majority filter of Deepness's median size (no DEFAULT_CLEANUP)",
    )
    ap.add_argument(
        "--aa-min-area",
        type=float,
        default=0.0,
        help="Arctic Assist's MIN_AREA in m2 (default 0; detect_thaw_slumps's own default is "
        "500 m2, i.e. 500 px on this 1 m raster)",
    )
    ap.add_argument("--child-deepness", nargs=3, metavar=("RASTER", "MODEL", "BATCH"))
    ap.add_argument("--child-aa", nargs=4, metavar=("RASTER", "MODEL", "OUT", "MEDIAN"))
    ap.add_argument(
        "--verify",
        action="store_true",
        help="first, untimed: compare the two tools' foreground masks (no clean-up on either side)",
    )
    ap.add_argument("--result")
    ap.add_argument("--save-mask")
    ap.add_argument("--probability")
    args = ap.parse_args()
    if args.aa_min_area:
        os.environ[MIN_AREA_ENV] = repr(float(args.aa_min_area))  # read by the children
    if args.child_deepness or args.child_aa:
        if args.child_deepness:
            r, m, b = args.child_deepness
            data = child_deepness(r, m, int(b), args.save_mask)
        else:
            r, m, o, med = args.child_aa
            data = child_aa(r, m, o, int(med), args.probability)
        Path(args.result).write_text(json.dumps(data))
        os._exit(0)  # skip QGIS's exit-time teardown (not measured, sometimes noisy)

    if not (DEEPNESS_SRC / "deepness").is_dir():
        print(
            "skipped: set DEEPNESS_SRC to the src folder of a Deepness checkout (and "
            "DEEPNESS_SITE to a folder with OpenCV); see this script's docstring"
        )
        return 0

    from bench_vectorise import mosaic, noise_tile, unet

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="dn_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        tile = noise_tile(work / "noise.tif")
        aa_model = unet(work / "unet_noise.onnx", tile)
        dn_batch = args.deepness_batch if args.deepness_batch > 1 else 1
        dn_model = deepness_model(
            aa_model,
            work / "unet_noise_deepness.onnx",
            args.deepness_output,
            args.small_segment,
            batch=None if dn_batch > 1 else 1,
        )
        check_same_network(aa_model, dn_model, tile)
        raster = mosaic(tile, work / f"noise_{args.size}.vrt", args.size)
        dn_median = int(args.small_segment // 2) * 2 + 1  # as MapProcessorSegmentation._run
        median = dn_median if args.match_cleanup else 0
        print(
            f"raster {args.size} x {args.size} px; threshold {aa_threshold(aa_model):.6f} "
            f"(both); Deepness output {args.deepness_output}, batch {dn_batch}, "
            f"seg_small_segment {args.small_segment} (median {dn_median} px); Arctic Assist "
            f"clean-up: {f'majority filter {median} px' if median else 'DEFAULT_CLEANUP'}",
            flush=True,
        )
        if args.verify:
            verify(work, raster, aa_model, args.deepness_output, dn_batch)
        jobs = {
            "deepness": lambda: measure(
                "deepness", [str(raster), str(dn_model), str(dn_batch)], work / "dn.json"
            ),
            "aa": lambda: measure(
                "aa",
                [str(raster), str(aa_model), str(work / "aa.gpkg"), str(median)],
                work / "aa.json",
            ),
        }
        for rep in range(args.repeat):
            order = ("deepness", "aa") if rep % 2 == 0 else ("aa", "deepness")  # ABBA
            for kind in order:
                data = jobs[kind]()
                data["rep"] = rep
                rows.append(data)
                print(_row(data), "  ", _note(data), flush=True)
                (work / "aa.gpkg").unlink(missing_ok=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\nmedians over {args.repeat} run(s) each, raster {args.size} x {args.size} px:")
    print(_header())
    med: dict[str, dict] = {}
    for tool in ("Deepness", "Arctic Assist"):
        runs = [r for r in rows if r["tool"] == tool]
        med[tool] = {
            k: statistics.median(r[k] for r in runs)
            for k in (
                "seconds",
                "run_seconds",
                "inference_seconds",
                "peak_rss_mb",
                "base_rss_mb",
                "features",
            )
        }
        med[tool]["tool"] = tool
        print(_row(med[tool]))
    d, a = med["Deepness"], med["Arctic Assist"]
    print(
        f"\nwall Deepness / Arctic Assist = {d['seconds'] / a['seconds']:.2f} "
        f"(= throughput Arctic Assist / Deepness); wall / ORT: Deepness "
        f"{d['seconds'] / d['inference_seconds']:.2f}, Arctic Assist "
        f"{a['seconds'] / a['inference_seconds']:.2f}; ORT Deepness / Arctic Assist "
        f"{d['inference_seconds'] / a['inference_seconds']:.2f}"
    )
    return 0


def _header() -> str:
    return (
        f"{'tool':<14} {'wall s':>8} {'ORT s':>8} {'peak RSS MB':>12} {'base MB':>8} "
        f"{'polygons':>9}"
    )


def _row(d: dict) -> str:
    return (
        f"{d['tool']:<14} {d['seconds']:>8.2f} {d['inference_seconds']:>8.2f} "
        f"{d['peak_rss_mb']:>12.0f} {d['base_rss_mb']:>8.0f} {d['features']:>9.0f}"
    )


def _note(d: dict) -> str:
    if d["tool"] == "Deepness":
        return (
            f"run() {d['run_seconds']:.2f} s, set-up {d['setup_seconds']:.2f} s, "
            f"{d['tiles']} tiles in {d['session_runs']} session.run ({d['provider']}), "
            f"layers {d['features_per_layer']}, foreground {100 * d['foreground_fraction']:.1f} % "
            f"after the {d['median_filter']} px median, "
            f"add to project {d['add_to_project_seconds']:.2f} s; "
            + ", ".join(f"{k} {v:.1f}" for k, v in d["phases"].items())
            + f", rest of run() {d['run_seconds'] - sum(d['phases'].values()):.1f}"
        )
    tm = ", ".join(f"{k} {v:.1f}" for k, v in d["timings"].items() if k != "total")
    calls = f"; {d['calls']}" if d.get("calls") else ""
    return f"{d['tiles']} tiles ({d['provider']}{calls}), {d['cleanup']}; {tm}"


if __name__ == "__main__":
    sys.exit(main())
