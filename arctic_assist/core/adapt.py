"""Scene adaptation: a new scene's band levels brought to those of the model's training data.

A network trained on one scene learns that scene's absolute levels. Another scene's sun,
season, atmosphere and sensor calibration scale every band's values, and the bundled
thaw-slump model then proposes nothing or everything: on Peel's held-out half it falls
from IoU 0.70 to 0.10 with the image x 0.8 and to 0.00 at x 1.25
(``benchmarks/bench_rts_shift.py``). Models exported by this project carry the per-band
median of the raw values of their training scenes (``input.statistics.median``); detection
measures the same median on the scene (:func:`scene_statistics`, a bounded sample of the
whole raster) and multiplies each band by

    gain[b] = training_median[b] / scene_median[b]

before the model's normalisation (after the user's ``OFFSET``, if any). One gain per band,
from medians: a gain is what light and calibration change most, and a median moves only a
few percent when a fifth of the scene is lake or cloud. Matching mean and standard
deviation (measured first) undoes offsets too, but drops Peel's held-out IoU from 0.70 to
0.31 when a fifth of the image is lake, the most common surface of a permafrost landscape;
the median gain keeps 0.72 there, recovers +300 DN, haze and single-band changes
(0.70-0.73) and costs 0.04 with 15 % cloud (README).

A band that needs a gain beyond ``GAIN_RANGE`` is not another light on the same kind of
land (a mid-latitude scene in the Virginia test asks for 5.5 in NIR): in ``auto`` mode such
a scene is used as it is, with a warning saying why; ``always`` / ``never`` decide for the
user. (Sentinel-2's processing-baseline offset of +1000 DN asks for about 0.5 in blue and
is only half undone by a gain: ``OFFSET`` removes it.) numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: ``auto``: adapt unless a gain is beyond GAIN_RANGE; ``always``; ``never``
MODES = ("auto", "always", "never")
#: the largest OFFSET (raw units) subtracted before a scene is measured and adapted
MAX_OFFSET = 1e6
#: per-band gains ``auto`` applies (either way a factor 2.5)
GAIN_RANGE = (0.4, 2.5)
#: pixels sampled for the statistics (windows of WINDOW px on a regular grid)
SAMPLE_PIXELS = 1 << 20
WINDOW = 128
#: fewer valid pixels than this: the statistics are not trusted, nothing is adapted
MIN_PIXELS = 2000


@dataclass(frozen=True)
class SceneStatistics:
    median: tuple[float, ...]  # raw band values
    pixels: int  # valid pixels they were computed from


@dataclass(frozen=True)
class Adaptation:
    """Per band: ``raw' = (raw - offset) * gain[b]`` on valid pixels, before the
    normalisation (``offset``: the user's, e.g. Sentinel-2's 1000; ``gain``: the plan's)."""

    gain: tuple[float, ...]
    offset: float = 0.0

    def apply(
        self, raw: np.ndarray, valid: np.ndarray, nodata: Sequence[float | None] = ()
    ) -> np.ndarray:
        """``raw`` (C x H x W) changed where ``valid`` (H x W); other pixels unchanged.

        Integer rasters stay integers of their type (rounded and clipped to the type's
        range), so the normalisation keeps its exact lookup tables; a changed value that
        would equal the band's ``nodata`` value moves one step away from it.
        """
        g = np.asarray(self.gain, np.float64).reshape(-1, 1, 1)
        out = (raw.astype(np.float64) - float(self.offset)) * g
        if raw.dtype.kind in "iu":
            info = np.iinfo(raw.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
            for b, nd in enumerate(nodata or ()):
                if nd is not None and np.isfinite(nd):
                    hit = out[b] == nd
                    if hit.any():
                        step = 1 if nd < info.max else -1
                        out[b][hit] = nd + step
        out = np.where(valid[None], out, raw)
        return out.astype(raw.dtype, copy=False)


@dataclass(frozen=True)
class Plan:
    """What detection does: ``adaptation`` (None: the scene is used as it is) and why."""

    adaptation: Adaptation | None
    message: str
    warning: bool = False


def windows(height: int, width: int, sample_pixels: int = SAMPLE_PIXELS, window: int = WINDOW):
    """(row, col, rows, cols) windows spread on a regular grid over the area, about
    ``sample_pixels`` pixels in all (the whole area when it is that small)."""
    if height * width <= sample_pixels:
        return [(0, 0, height, width)]
    n = max(1, int(sample_pixels // (window * window)))
    per_row = max(1, round(np.sqrt(n * width / max(height, 1))))
    per_col = max(1, n // per_row)
    rows = np.linspace(0, max(height - window, 0), per_col).astype(int)
    cols = np.linspace(0, max(width - window, 0), per_row).astype(int)
    return [
        (int(r), int(c), min(window, height - int(r)), min(window, width - int(c)))
        for r in sorted(set(rows))
        for c in sorted(set(cols))
    ]


def scene_statistics(
    read: Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]],
    height: int,
    width: int,
    is_canceled: Callable[[], bool] | None = None,
) -> SceneStatistics:
    """Per-band median of the raw valid values of the area.

    ``read(row, col, rows, cols)`` -> (raw C x rows x cols, valid rows x cols). Bounded: at
    most about ``SAMPLE_PIXELS`` pixels are read, in windows spread over the area.
    """
    parts = []
    for r, c, nr, nc in windows(height, width):
        if is_canceled is not None and is_canceled():
            from .errors import CanceledError

            raise CanceledError()
        raw, valid = read(r, c, nr, nc)
        parts.append(raw[:, valid].astype(np.float64))
    vals = np.concatenate(parts, axis=1) if parts else np.zeros((0, 0))
    if vals.size == 0:
        return SceneStatistics((), 0)
    return SceneStatistics(tuple(map(float, np.median(vals, axis=1))), int(vals.shape[1]))


def plan(
    reference: Sequence[float] | None,
    scene: SceneStatistics | None,
    mode: str = "auto",
    band_names: Sequence[str] = (),
) -> Plan:
    """Decide the adaptation of a scene with statistics ``scene`` to ``reference`` (the
    model's ``input_medians``) in ``mode`` (``MODES``)."""
    if mode not in MODES:
        raise ValueError(f"scene adaptation mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "never":
        return Plan(None, "Scene adaptation: off (the scene's values are used as they are)")
    if reference is None:
        return Plan(
            None,
            "Scene adaptation: not available (the model does not carry the band medians of "
            "its training scenes)",
        )
    if scene is None or scene.pixels < MIN_PIXELS:
        return Plan(
            None,
            f"Scene adaptation: skipped (only {0 if scene is None else scene.pixels} valid "
            f"pixels to measure the scene on; at least {MIN_PIXELS} are needed)",
            warning=True,
        )
    ref = np.asarray(reference, np.float64)
    med = np.asarray(scene.median, np.float64)
    names = list(band_names) or [f"band {i + 1}" for i in range(len(ref))]
    if np.any(med <= 0):
        zero = [n for n, m in zip(names, med) if m <= 0]
        return Plan(
            None,
            f"Scene adaptation: skipped (the median of band(s) {', '.join(zero)} is not positive)",
            warning=True,
        )
    gain = ref / med
    shown = ", ".join(f"{n}: median {m:g} -> x {g:.3f}" for n, m, g in zip(names, med, gain))
    lo, hi = GAIN_RANGE
    if mode == "auto":
        beyond = [n for n, g in zip(names, gain) if not lo <= g <= hi]
        if beyond:
            return Plan(
                None,
                f"Scene adaptation: skipped: band(s) {', '.join(beyond)} would need a gain "
                f"beyond x {lo:g} .. x {hi:g} to look like the model's training scenes, more "
                f"than light or calibration explain: this looks like another kind of "
                f"landscape, or values in other units (reflectance 0-1 instead of "
                f"digital numbers) or with an offset; proposals here need a careful review "
                f"({shown}). To adapt anyway, set ADAPT to always (advanced parameter "
                f"'Match the scene's band levels to the model's training data').",
                warning=True,
            )
    return Plan(
        Adaptation(tuple(map(float, gain))),
        f"Scene adaptation: on, each band scaled to the medians of the model's training "
        f"scenes ({scene.pixels} pixels: {shown})",
    )
