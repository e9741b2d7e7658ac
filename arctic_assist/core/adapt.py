"""Scene adaptation: a new scene's band levels matched to the model's training data.

A network trained on one scene learns that scene's absolute levels. Another scene's
atmosphere (haze adds, most in blue), sun, season and sensor calibration change every band's
values, and the bundled thaw-slump model then proposes nothing or everything: on Peel's
held-out half it falls from IoU 0.70 to 0.10 at x 0.8 and to 0.00 at x 1.25
(``benchmarks/bench_rts_shift.py``). Models exported by this project carry the per-band
mean and standard deviation of their training input (after normalisation,
``input.statistics``); detection measures the same two numbers on the scene it processes
(:func:`scene_statistics`, a bounded sample of the processing area) and maps each band's
normalised values so that they match:

    x' = (x - scene_mean[b]) / scene_std[b] * train_std[b] + train_mean[b]

A radiometric change moves those moments; a different *landscape* moves them too. Matching
a scene whose band contrast differs from the training data's by more than radiometry
explains (a standard-deviation ratio outside ``[1 / MAX_CONTRAST_RATIO,
MAX_CONTRAST_RATIO]`` in any band: x 0.8 .. x 1.25, +-300, haze and single-band changes of
Peel all stay within 0.75 .. 1.39) would histogram-match another landscape onto the training
scene, so in ``auto`` mode such a scene is left as it is, with a warning that says why; the
``always`` / ``never`` modes decide for the user. numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: ``auto``: adapt unless the scene's contrast is beyond radiometry; ``always``; ``never``
MODES = ("auto", "always", "never")
#: largest band standard-deviation ratio (either way) ``auto`` adapts
MAX_CONTRAST_RATIO = 1.5
#: pixels sampled for the statistics (windows of WINDOW px on a regular grid)
SAMPLE_PIXELS = 1 << 20
WINDOW = 128
#: fewer valid pixels than this: the statistics are not trusted, nothing is adapted
MIN_PIXELS = 2000


@dataclass(frozen=True)
class SceneStatistics:
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixels: int  # valid pixels they were computed from


@dataclass(frozen=True)
class Adaptation:
    """Per band: ``x' = x * gain[b] + shift[b]`` on valid pixels (normalised values)."""

    gain: tuple[float, ...]
    shift: tuple[float, ...]

    def apply(self, x: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``x`` (C x H x W float32) adapted where ``valid`` (H x W); others unchanged."""
        g = np.asarray(self.gain, np.float32).reshape(-1, 1, 1)
        s = np.asarray(self.shift, np.float32).reshape(-1, 1, 1)
        out = x * g + s
        if not valid.all():
            out = np.where(valid[None], out, x)
        return out.astype(np.float32, copy=False)


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
        step = max(height, width, 1)
        return [
            (r, c, min(step, height - r), min(step, width - c))
            for r in range(0, height, step)
            for c in range(0, width, step)
        ]
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
    n_bands: int,
    is_canceled: Callable[[], bool] | None = None,
) -> SceneStatistics:
    """Per-band mean and standard deviation of the normalised valid pixels of the area.

    ``read(row, col, rows, cols)`` -> (normalised C x rows x cols, valid rows x cols), the
    detection's own reader (before any adaptation). Bounded: at most about
    ``SAMPLE_PIXELS`` pixels are read, in windows spread over the area.
    """
    total = np.zeros(n_bands)
    sq = np.zeros(n_bands)
    count = 0
    for r, c, nr, nc in windows(height, width):
        if is_canceled is not None and is_canceled():
            from .errors import CanceledError

            raise CanceledError()
        x, valid = read(r, c, nr, nc)
        vals = x[:, valid].astype(np.float64)
        total += vals.sum(axis=1)
        sq += (vals**2).sum(axis=1)
        count += vals.shape[1]
    if count == 0:
        return SceneStatistics((0.0,) * n_bands, (0.0,) * n_bands, 0)
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
    return SceneStatistics(tuple(map(float, mean)), tuple(map(float, std)), int(count))


def plan(
    reference: tuple[Sequence[float], Sequence[float]] | None,
    scene: SceneStatistics | None,
    mode: str = "auto",
    band_names: Sequence[str] = (),
) -> Plan:
    """Decide the adaptation of a scene with statistics ``scene`` to ``reference`` (the
    model's ``input_statistics``) in ``mode`` (``MODES``)."""
    if mode not in MODES:
        raise ValueError(f"scene adaptation mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "never":
        return Plan(None, "Scene adaptation: off (the scene's values are used as they are)")
    if reference is None:
        return Plan(
            None,
            "Scene adaptation: not available (the model does not carry the statistics of "
            "its training input)",
        )
    if scene is None or scene.pixels < MIN_PIXELS:
        return Plan(
            None,
            f"Scene adaptation: skipped (only {0 if scene is None else scene.pixels} valid "
            f"pixels to measure the scene on; at least {MIN_PIXELS} are needed)",
            warning=True,
        )
    ref_mean = np.asarray(reference[0], np.float64)
    ref_std = np.asarray(reference[1], np.float64)
    mean = np.asarray(scene.mean, np.float64)
    std = np.maximum(np.asarray(scene.std, np.float64), 1e-6)
    ratio = std / ref_std  # the scene's contrast against the training data's
    names = list(band_names) or [f"band {i + 1}" for i in range(len(mean))]
    shown = ", ".join(
        f"{n}: mean {m:+.3f}, contrast x {r:.2f}"
        for n, m, r in zip(names, (mean - ref_mean), ratio)
    )
    if mode == "auto":
        beyond = [
            n
            for n, r in zip(names, ratio)
            if not 1.0 / MAX_CONTRAST_RATIO <= r <= MAX_CONTRAST_RATIO
        ]
        if beyond:
            return Plan(
                None,
                f"Scene adaptation: skipped: the contrast of band(s) {', '.join(beyond)} "
                f"differs from the model's training data by more than a change of "
                f"atmosphere or light explains (x {1 / MAX_CONTRAST_RATIO:.2f} .. "
                f"x {MAX_CONTRAST_RATIO:.2f}): this looks like another kind of landscape, "
                f"and proposals there need a careful review ({shown}). ADAPT=always "
                f"adapts anyway.",
                warning=True,
            )
    gain = ref_std / std
    shift = ref_mean - mean * gain
    return Plan(
        Adaptation(tuple(map(float, gain)), tuple(map(float, shift))),
        f"Scene adaptation: on, band levels matched to the model's training data "
        f"(scene vs training, {scene.pixels} pixels: {shown})",
    )
