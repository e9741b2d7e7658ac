"""COBRA (Heidler et al. 2023): a deep active contour for glacier calving fronts.

``python -m arctic_assist.training cobra --frontlearning DIR --out MODEL.onnx --steps N``

- Backbone (:class:`LightBackbone`): a small CPU-friendly CNN giving feature maps at H/4
  (64 channels) and H/16 (``width`` channels, 512 in the paper, 128 by default here),
  channel dropout 0.5 while training. The input window is standardised per image and
  channel **inside the graph** (mean / std over H, W), so the ONNX model takes raw band
  values (uint8 PNG or uint16 Landsat alike) and its metadata says normalisation 'none'.
- Snake head (:class:`SnakeHead`), as in the authors' code: kernel-1 conv, six kernel-3
  convs with dilations 1, 3, 9, 9, 3, 1 and ReLU (zero padding: fronts are open curves),
  then a bias-free, zero-initialised 2-channel offset layer. Per-vertex input: bilinear
  samples (``grid_sample``, align_corners=True, zero padding, (x, y) order) of both feature
  maps plus the offsets to the next and previous vertex.
- 64 vertices start at the image centre; 4 iterations with shared weights and the gradient
  stopped between them; loss Soft-DTW (gamma 0.001, squared distance, coordinates in
  [-1, 1]) summed over the iterations.
- ONNX: outputs ``contour_0 .. contour_3`` (N x 64 x 2, (x, y) in [-1, 1]).
- Geometry: the model runs on a square tile of ``--size`` px (the metadata's
  ``tile.size``); a window (a held-out image, the plugin's AOI box) is fitted into it by
  :func:`arctic_assist.core.contour.fit_window` in evaluation and in the plugin alike.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import contour as C
from ..core.spec import MULTIPLE_OF
from . import fronts as FR
from .softdtw import soft_dtw

log = logging.getLogger(__name__)

VERTICES = 64
ITERATIONS = 4

# ----------------------------------------------------------------------------- model


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class InstanceStandardize(nn.Module):
    """``(x - mean) / (std + eps)`` per image and channel, clipped to +-``clip``."""

    def __init__(self, eps: float = 1e-3, clip: float = 5.0) -> None:
        super().__init__()
        self.eps = eps
        self.clip = clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(2, 3), keepdim=True)
        z = (x - mean) / (torch.sqrt(var) + self.eps)
        return torch.clamp(z, -self.clip, self.clip)


class LightBackbone(nn.Module):
    """Features at H/4 (64 ch) and H/16 (``width`` ch, dilated context)."""

    def __init__(self, in_channels: int = 1, width: int = 128, base: int = 24) -> None:
        super().__init__()
        b = base
        self.stem = nn.Sequential(
            _cbr(in_channels, b, 2), _cbr(b, 2 * b, 2), _cbr(2 * b, 64)
        )  # H/4
        self.down8 = nn.Sequential(_cbr(64, 4 * b, 2), _cbr(4 * b, 4 * b))  # H/8
        self.down16 = nn.Sequential(
            _cbr(4 * b, 128, 2), _cbr(128, 128, dilation=2), _cbr(128, 128, dilation=4)
        )  # H/16
        self.proj = nn.Sequential(
            nn.Conv2d(128 + 4 * b, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.out_channels = (64, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f4 = self.stem(x)
        f8 = self.down8(f4)
        f16 = self.down16(f8)
        pooled = F.avg_pool2d(f8, 2, 2)
        f16 = self.proj(torch.cat([f16, pooled], dim=1))
        return f4, f16


def sample_at_vertices(feature: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``feature`` (N, C, H, W) at ``vertices`` (N, V, 2) xy in [-1, 1]
    -> (N, C, V); align_corners=True, zeros outside."""
    grid = vertices.unsqueeze(1)  # (N, 1, V, 2), (x, y)
    out = F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.squeeze(2)


class SnakeHead(nn.Module):
    """1D CNN over the vertex sequence predicting per-vertex offsets."""

    def __init__(
        self,
        in_features: int,
        dim: int = 64,
        dilations: tuple[int, ...] = (1, 3, 9, 9, 3, 1),
        index_feature: bool = True,
    ) -> None:
        super().__init__()
        self.index_feature = index_feature
        extra = 4 + (1 if index_feature else 0)
        layers: list[nn.Module] = [nn.Conv1d(in_features + extra, dim, 1), nn.ReLU(inplace=True)]
        for d in dilations:
            layers += [nn.Conv1d(dim, dim, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*layers)
        self.offset = nn.Conv1d(dim, 2, 1, bias=False)
        nn.init.zeros_(self.offset.weight)

    def forward(self, vertices: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        sampled = [sample_at_vertices(f, vertices) for f in features]
        diff = vertices[:, 1:] - vertices[:, :-1]  # (N, V-1, 2)
        diff = F.pad(diff, (0, 0, 1, 1))  # (N, V+1, 2)
        to_next = diff[:, 1:]  # v[i+1] - v[i]
        from_prev = diff[:, :-1]  # v[i] - v[i-1]
        parts = sampled + [to_next.transpose(1, 2), from_prev.transpose(1, 2)]
        if self.index_feature:  # the vertex's place along the front, in [-1, 1]
            n, v = vertices.shape[:2]
            idx = torch.linspace(-1.0, 1.0, v, device=vertices.device, dtype=vertices.dtype)
            parts.append(idx.view(1, 1, v).expand(n, 1, v))
        x = torch.cat(parts, dim=1)
        return self.offset(self.blocks(x)).transpose(1, 2)  # (N, V, 2)


class Cobra(nn.Module):
    """Backbone + snake head; ``forward`` returns the list of the iterations' contours."""

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 128,
        head_dim: int = 64,
        vertices: int = VERTICES,
        iterations: int = ITERATIONS,
        dropout: float = 0.5,
        index_feature: bool = True,
        init: str = "centre",
    ) -> None:
        super().__init__()
        if init not in ("centre", "line"):
            raise ValueError(f"init is 'centre' or 'line', not {init!r}")
        self.init = init
        self.norm = InstanceStandardize()
        self.backbone = LightBackbone(in_channels, width)
        self.dropout = nn.Dropout2d(dropout)
        self.head = SnakeHead(
            sum(self.backbone.out_channels), head_dim, index_feature=index_feature
        )
        self.vertices = vertices
        self.iterations = iterations
        self.hparams_dict = dict(
            in_channels=in_channels,
            width=width,
            head_dim=head_dim,
            vertices=vertices,
            iterations=iterations,
            dropout=dropout,
            index_feature=index_feature,
            init=init,
        )

    def initial_vertices(self, x: torch.Tensor) -> torch.Tensor:
        """(N, V, 2) start: every vertex at the centre (the paper), or ``'line'``: a
        straight line across the middle of the tile, left to right (ordered vertices
        with distinct features from the first iteration on)."""
        v = x.new_zeros((x.shape[0], self.vertices, 2))
        if self.init == "line":
            t = torch.linspace(-0.5, 0.5, self.vertices, device=x.device, dtype=x.dtype)
            v = v + torch.stack([t, torch.zeros_like(t)], dim=1)
        return v

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_with_features(x)[0]

    def forward_with_features(
        self, x: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats = [self.dropout(f) for f in self.backbone(self.norm(x))]
        v = self.initial_vertices(x)
        steps = []
        for _ in range(self.iterations):
            v = v.detach()
            v = v + self.head(v, feats)
            steps.append(v)
        return steps, feats


class CobraExport(nn.Module):
    """Export wrapper: a tuple of every iteration's contour (contour_0 .. contour_{K-1})."""

    def __init__(self, model: Cobra) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(image))


class AuxHead(nn.Module):
    """Training-only dense head (not exported): front heat-map logits at H/4 from both
    feature maps, so the backbone gets a dense gradient from the start (the authors' code
    carries a similar ``AuxHead``)."""

    def __init__(self, channels: tuple[int, int], out: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(sum(channels), 32, 1), nn.ReLU(inplace=True), nn.Conv2d(32, out, 1)
        )

    def forward(self, f4: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(f16, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([f4, up], dim=1))


def front_heatmap(
    front_px: np.ndarray, size: int, stride: int = 4, sigma: float = 1.5
) -> np.ndarray:
    """exp(-d^2 / 2 sigma^2) of the distance (in H/stride cells) to the front, (1, h, w)."""
    h = w = size // stride
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # centres of the stride x stride cells in full-resolution pixel coordinates
    pts = np.stack(
        [xx.ravel() * stride + (stride - 1) / 2.0, yy.ravel() * stride + (stride - 1) / 2.0], axis=1
    )
    d = C.point_to_polyline_distance(pts, front_px) / stride
    return np.exp(-0.5 * (d / sigma) ** 2).reshape(1, h, w).astype(np.float32)


def front_signed_distance(
    front_px: np.ndarray, size: int, stride: int = 4, scale: float = 0.25
) -> np.ndarray:
    """Signed distance of the H/stride cell centres to the front, (1, h, w) in [-1, 1]:
    divided by ``scale x size`` and clipped; positive on the glacier side (left of the
    vertex order on screen, y down), so it also teaches the orientation convention."""
    h = w = size // stride
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    p = np.stack(
        [xx.ravel() * stride + (stride - 1) / 2.0, yy.ravel() * stride + (stride - 1) / 2.0], axis=1
    )
    a = front_px[:-1][None]
    ab = (front_px[1:] - front_px[:-1])[None]
    ap = p[:, None] - a
    den = np.maximum((ab**2).sum(-1), 1e-12)
    t = np.clip((ap * ab).sum(-1) / den, 0.0, 1.0)
    rel = ap - t[..., None] * ab  # cell - closest point, per segment
    d = np.linalg.norm(rel, axis=-1)
    k = d.argmin(axis=1)
    i = np.arange(len(p))
    seg, r = ab[0, k], rel[i, k]
    side = np.sign(r[:, 0] * seg[:, 1] - r[:, 1] * seg[:, 0])  # dot(r, (dy, -dx))
    sd = np.clip(side * d[i, k] / (scale * size), -1.0, 1.0)
    return sd.reshape(1, h, w).astype(np.float32)


def cobra_loss(
    steps: list[torch.Tensor], target: torch.Tensor, gamma: float = 0.001
) -> torch.Tensor:
    """Soft-DTW summed over the iterations, mean over the batch."""
    return sum(soft_dtw(s.float(), target.float(), gamma).mean() for s in steps)


def spacing_penalty(v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample ``sum_i (|v[i+1] - v[i]| - l)^2`` with ``l`` the target's (equal) vertex
    spacing: zero for an ordered line as long as the front, large for a cluster or a
    zig-zag (which has the same Soft-DTW alignment cost but long, uneven steps)."""
    seg = torch.sqrt(((v[:, 1:] - v[:, :-1]) ** 2).sum(-1) + 1e-12)
    ref = torch.sqrt(((target[:, 1:] - target[:, :-1]) ** 2).sum(-1) + 1e-12).mean(1, keepdim=True)
    return ((seg - ref) ** 2).sum(1)


def contour_losses(
    steps: list[torch.Tensor],
    target: torch.Tensor,
    gamma: float = 0.001,
    vertex_weight: float = 0.0,
    spacing_weight: float = 0.0,
    orientation: str = "fixed",
) -> dict[str, torch.Tensor]:
    """The snake's losses summed over the iterations, mean over the batch.

    ``orientation='fixed'``: against the front as given (glacier on the left).
    ``'free'``: per sample, the smaller of the losses against the front and against the
    reversed front, so the vertex order is not a coin toss the model hedges on (the
    glacier side is left to the data convention of the winning direction).
    Returns ``loss`` (total), ``dtw``, ``vertex``, ``spacing`` and ``oriented`` (share of
    samples whose loss picked the given direction).
    """
    y = target.float()
    dirs = [y, y.flip(1)] if orientation == "free" else [y]
    per_dir = []
    parts = []
    for t in dirs:
        dtw = sum(soft_dtw(s.float(), t, gamma) for s in steps)
        vert = sum(((s.float() - t) ** 2).sum(-1).sum(-1) for s in steps)
        per_dir.append(dtw + vertex_weight * vert)
        parts.append((dtw, vert))
    if len(dirs) == 2:
        pick = (per_dir[1] < per_dir[0]).detach()
        total = torch.where(pick, per_dir[1], per_dir[0])
        dtw = torch.where(pick, parts[1][0], parts[0][0])
        vert = torch.where(pick, parts[1][1], parts[0][1])
        oriented = 1.0 - pick.float().mean()
    else:
        total, (dtw, vert) = per_dir[0], parts[0]
        oriented = torch.ones(())
    spacing = sum(spacing_penalty(s.float(), y) for s in steps)
    total = total + spacing_weight * spacing
    return {
        "loss": total.mean(),
        "dtw": dtw.mean(),
        "vertex": vert.mean(),
        "spacing": spacing.mean(),
        "oriented": oriented,
    }


# ----------------------------------------------------------------------------- data


class FrontDataset(torch.utils.data.Dataset):
    """Random augmented tiles (``size`` px) from real samples and synthetic fronts.

    Index ``i`` (+ ``offset``) seeds its own generator, so a run is reproducible and
    workers agree; a resumed run starts at ``offset = step x batch`` and sees the views
    the uninterrupted run would have seen.
    Yields ``(image (C, S, S) float32, front (64, 2) xy in [-1, 1], dense targets
    (2, S/4, S/4): front heat-map and signed distance)``.
    """

    def __init__(
        self,
        samples: list[FR.FrontSample],
        length: int,
        size: int = 192,
        synthetic: float = 0.3,
        seed: int = 0,
        in_channels: int = 1,
        scale_range: tuple[float, float] = (0.7, 1.4),
        shift: float = 0.2,
        offset: int = 0,
    ) -> None:
        self.samples = samples
        self.offset = offset
        self.scale_range = tuple(scale_range)
        self.shift = shift
        self.length = length
        self.size = size
        self.synthetic = synthetic if samples else 1.0
        self.seed = seed
        self.in_channels = in_channels

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, i + self.offset])
        if rng.random() < self.synthetic:
            s = FR.synthetic_front(rng, self.size)
            if self.in_channels > 1:
                s.image = np.repeat(s.image, self.in_channels, 0)
        else:
            s = self.samples[int(rng.integers(len(self.samples)))]
        img, front = FR.augment(s, rng, self.size, scale_range=self.scale_range, shift=self.shift)
        v = C.pixel_to_normalized(front, self.size, self.size)
        return (
            torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)),
            torch.from_numpy(v.astype(np.float32)),
            torch.from_numpy(
                np.concatenate(
                    [front_heatmap(front, self.size), front_signed_distance(front, self.size)]
                )
            ),
        )


def torch_runner(model: Cobra):
    """``run(x (1, C, T, T) float32) -> [(V, 2) model coordinates]`` for a torch model."""

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [s[0].double().numpy() for s in model(torch.from_numpy(x))]

    return run


def onnx_runner(path: str):
    """``(run, tile size)`` of an exported contour model (onnxruntime on the CPU)."""
    from ..core.onnx_model import OnnxModel

    m = OnnxModel.load(str(path), "cpu", task="contour", tool="COBRA evaluation")
    names = [o.name for o in m.spec.outputs]

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o, dtype=np.float64)[0] for o in m.run(x, names)]

    return run, int(m.spec.tile_size)


def middle_line(shape: tuple[int, int], n: int = VERTICES) -> np.ndarray:
    """Baseline: a straight line across the middle of the window (left to right)."""
    h, w = shape
    return FR.resample_polyline(np.array([[0.0, (h - 1) / 2.0], [w - 1.0, (h - 1) / 2.0]]), n)


def evaluate(
    model,
    samples: list[FR.FrontSample],
    tile: int,
    mirror: bool = C.MIRROR,
    snap: float = C.SNAP_RADIUS,
) -> dict[str, Any]:
    """Held-out metrics, each image traced as the plugin does
    (:func:`arctic_assist.core.contour.trace_window`).

    ``model`` is a :class:`Cobra` or a runner (``torch_runner`` / ``onnx_runner``). In px
    of the original image (and m where the pixel size is known): mean symmetric
    point-to-polyline distance (per iteration too), mean vertex distance; the baseline of
    a straight line across the middle of each image; diagnostics of the line's shape:
    polylines that cross themselves, length over the true front's, and the orientation
    (the share of images whose vertex order matches the front's better than reversed).
    """
    run = model
    if isinstance(model, nn.Module):
        was = model.training
        model.eval()
        run = torch_runner(model)
    per_iter: list[list[float]] = []
    mvd, msd, msd_m, base, crossing, ratio, oriented = [], [], [], [], [], [], []
    raw_d, raw_x = [], []
    for s in samples:
        first = C.run_fitted(run, s.image, tile)  # the model alone, then refined from it
        raw = first[-1]
        raw_d.append(C.mean_symmetric_distance(raw, s.front, step=0.5))
        raw_x.append(C.self_intersections(raw))
        steps = C.trace_window(
            run, s.image, tile, C.REFINE_PASSES, first=first, mirror=mirror, snap=snap
        )
        pred = steps[-1]
        per_iter.append([C.mean_symmetric_distance(p, s.front, step=0.5) for p in steps])
        d = per_iter[-1][-1]
        msd.append(d)
        mvd.append(C.mean_vertex_distance(pred, s.front))
        if s.pixel_size_m:
            msd_m.append(d * s.pixel_size_m)
        base.append(C.mean_symmetric_distance(middle_line(s.image.shape[-2:]), s.front, step=0.5))
        crossing.append(C.self_intersections(pred))
        ratio.append(C.path_length_ratio(pred, s.front))
        oriented.append(
            C.mean_vertex_distance(pred, s.front) < C.mean_vertex_distance(pred, s.front[::-1])
        )
    if isinstance(model, nn.Module):
        model.train(was)
    nan = float("nan")
    out: dict[str, Any] = {
        "n_images": len(samples),
        "tile_size": int(tile),
        "mean_distance_px": float(np.mean(msd)) if msd else nan,
        "median_distance_px": float(np.median(msd)) if msd else nan,
        "mean_vertex_distance_px": float(np.mean(mvd)) if mvd else nan,
        "middle_line_distance_px": float(np.mean(base)) if base else nan,
        "per_iteration_distance_px": [float(v) for v in np.mean(per_iter, axis=0)]
        if per_iter
        else [],
        "self_intersecting": int(sum(c > 0 for c in crossing)),
        "crossings_mean": float(np.mean(crossing)) if crossing else nan,
        "length_ratio_mean": float(np.mean(ratio)) if ratio else nan,
        "oriented_share": float(np.mean(oriented)) if oriented else nan,
        # the model alone: one pass on the whole window, vertices in the model's order
        "raw_distance_px": float(np.mean(raw_d)) if raw_d else nan,
        "raw_self_intersecting": int(sum(c > 0 for c in raw_x)),
        "raw_crossings_mean": float(np.mean(raw_x)) if raw_x else nan,
        "refine_passes": C.REFINE_PASSES,
        "mirror": bool(mirror),
        "snap_px": float(snap),
    }
    if msd_m:
        out["mean_distance_m"] = float(np.mean(msd_m))
    return out


# ----------------------------------------------------------------------------- lightning

try:  # lightning is a training dependency only
    import lightning as L
except ImportError:  # pragma: no cover
    L = None


if L is not None:

    class CobraModule(L.LightningModule):
        """Lightning wrapper: Soft-DTW over the iterations, AdamW + warm-up + cosine."""

        def __init__(
            self,
            in_channels: int = 1,
            width: int = 128,
            head_dim: int = 64,
            lr: float = 1e-3,
            weight_decay: float = 1e-4,
            steps: int = 1000,
            warmup: int = 100,
            gamma: float = 0.001,
            index_feature: bool = True,
            aux_weight: float = 1.0,
            vertex_weight: float = 0.0,
            spacing_weight: float = 0.0,
            orientation: str = "fixed",
            init: str = "centre",
            aux_distance: bool = False,
        ) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.model = Cobra(
                in_channels=in_channels,
                width=width,
                head_dim=head_dim,
                index_feature=index_feature,
                init=init,
            )
            self.aux = (
                AuxHead(self.model.backbone.out_channels, 2 if aux_distance else 1)
                if aux_weight > 0
                else None
            )

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return self.model(x)

        def training_step(self, batch, batch_idx):
            x, y, heat = batch
            steps, feats = self.model.forward_with_features(x)
            parts = contour_losses(
                steps,
                y,
                self.hparams.gamma,
                self.hparams.vertex_weight,
                self.hparams.spacing_weight,
                self.hparams.orientation,
            )
            loss = parts["loss"]
            self.log("dtw_loss", parts["dtw"], prog_bar=True)
            self.log("vertex_loss", parts["vertex"])
            self.log("spacing_loss", parts["spacing"])
            self.log("oriented_share", parts["oriented"])
            if self.aux is not None:
                out = self.aux(*feats)
                aux = F.binary_cross_entropy_with_logits(out[:, :1], heat[:, :1])
                if self.hparams.aux_distance:  # signed distance map: where and which side
                    aux = aux + F.smooth_l1_loss(torch.tanh(out[:, 1:2]), heat[:, 1:2], beta=0.1)
                self.log("aux_loss", aux, prog_bar=True)
                loss = loss + self.hparams.aux_weight * aux
            with torch.no_grad():
                size = x.shape[-1]
                mvd = (steps[-1] - y).norm(dim=-1).mean() * (size - 1) / 2
            self.log("train_loss", loss, prog_bar=True)
            self.log("train_mvd_px", mvd, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch[:2]
            steps = self.model(x)
            loss = cobra_loss(steps, y, self.hparams.gamma)
            size = x.shape[-1]
            mvd = (steps[-1] - y).norm(dim=-1).mean() * (size - 1) / 2
            self.log("val_loss", loss, prog_bar=True)
            self.log("val_mvd_px", mvd, prog_bar=True)

        def configure_optimizers(self):
            opt = torch.optim.AdamW(
                self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
            )
            total = max(int(self.hparams.steps), 1)
            warm = min(int(self.hparams.warmup), total // 2)

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / max(warm, 1)
                t = (step - warm) / max(total - warm, 1)
                return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    class HeldoutCurve(L.Callback):
        """Every ``every`` steps: held-out metrics (:func:`evaluate`) appended as one JSON
        line to ``path`` (the validation curve; nothing is selected on it)."""

        def __init__(self, samples: list[FR.FrontSample], tile: int, every: int, path: str) -> None:
            self.samples, self.tile, self.every, self.path = samples, tile, every, path

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            step = int(trainer.global_step)
            if self.every <= 0 or step % self.every:
                return
            m = evaluate(pl_module.model, self.samples, self.tile)
            keep = (
                "mean_distance_px",
                "per_iteration_distance_px",
                "self_intersecting",
                "length_ratio_mean",
                "oriented_share",
            )
            row = {"step": step, **{k: m[k] for k in keep}}
            log.info("held-out at step %d: %s", step, row)
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------------- export


def model_spec(
    model: Cobra,
    *,
    pixel_size_m: float | None,
    provenance: dict[str, Any],
    name: str = "calving_front_cobra",
    version: str = "1.0.0",
    bands: tuple[str, ...] = ("gray",),
    tile_size: int = 192,
):
    """The :class:`~arctic_assist.core.spec.ModelSpec` of a COBRA export."""
    from ..core.spec import EXPORT_OPSET, ContourSpec, validate_metadata

    k, v = model.iterations, model.vertices
    doc = {
        "schema": "arctic_assist.model",
        "schema_version": 1,
        "name": name,
        "version": version,
        "task": "contour",
        "description": (
            "COBRA calving-front tracer (Heidler et al. 2023): 64-vertex open polyline with the "
            "glacier on the left of the vertex order; every iteration's contour is an output. "
            "Input: raw band values as float32; the window is standardised per image inside "
            "the graph. Window: the AOI box in its own frame at pixel_size_m, fitted into "
            f"the square tile of tile.size px ({tile_size}; one scale, centred, the rest at "
            "the window's mean), as in training and evaluation."
        ),
        "input": {
            "name": "image",
            "layout": "NCHW",
            "dtype": "float32",
            "bands": list(bands),
            "normalization": {"type": "none"},
            "nodata": {"value": None, "fill": 0.0},
        },
        "pixel_size_m": pixel_size_m,
        "tile": {"size": tile_size, "overlap": 0, "multiple_of": MULTIPLE_OF},
        "classes": ["front"],
        "threshold": 0.5,
        "outputs": [
            {"name": f"contour_{i}", "shape": ["N", v, 2], "activation": "none"} for i in range(k)
        ],
        "contour": {"vertices": v, "iterations": k, "coordinates": ContourSpec().coordinates},
        "opset": EXPORT_OPSET,
        "provenance": provenance,
    }
    return validate_metadata(doc)


def export(model: Cobra, spec, path: str, size: int = 192) -> None:
    """Export with the shared exporter (metadata, checker), dynamic batch and H, W."""
    from .export import export_onnx

    model = model.eval()
    wrapper = CobraExport(model).eval()
    example = torch.zeros(1, model.hparams_dict["in_channels"], size, size)
    example[..., size // 3 :, :] = 1.0
    outs = [o.name for o in spec.outputs]
    dyn = {"image": {0: "N", 2: "H", 3: "W"}}
    dyn.update({o: {0: "N"} for o in outs})
    export_onnx(
        wrapper, example, spec, path, input_names=["image"], output_names=outs, dynamic_axes=dyn
    )


# ----------------------------------------------------------------------------- CLI


def _split_holdout(
    samples: list[FR.FrontSample], holdout: str | None
) -> tuple[list[FR.FrontSample], list[FR.FrontSample]]:
    groups = set(holdout.split(",")) if holdout else set()

    def held(s: FR.FrontSample) -> bool:
        return s.group in groups or s.meta.get("split") in ("val", "test")

    return [s for s in samples if not held(s)], [s for s in samples if held(s)]


def load_samples(args: argparse.Namespace) -> list[FR.FrontSample]:
    samples: list[FR.FrontSample] = []
    if args.frontlearning:
        samples += FR.read_frontlearning(args.frontlearning, labels=args.labels)
    if args.data:
        samples += FR.read_training_folder(args.data)
    return samples


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m arctic_assist.training cobra",
        description="Train COBRA (calving fronts) and export ONNX.",
    )
    p.add_argument("--frontlearning", help="FrontLearning train folder (images/, labels_1px/)")
    p.add_argument("--labels", default="labels_1px", help="FrontLearning label folder")
    p.add_argument("--data", help="Arctic Assist training-data folder (task 'contour')")
    p.add_argument("--out", help="output ONNX path (required unless --evaluate)")
    p.add_argument(
        "--evaluate",
        metavar="MODEL.onnx",
        help="no training: evaluate an exported COBRA model on the held-out "
        "images (--holdout) at its metadata's tile size; prints JSON",
    )
    p.add_argument(
        "--no-mirror",
        action="store_true",
        help="--evaluate: trace one orientation only (the plugin's MIRROR off)",
    )
    p.add_argument(
        "--snap",
        type=float,
        default=C.SNAP_RADIUS,
        metavar="PX",
        help="--evaluate: the plugin's SNAP (model pixels; 0: off; default %(default)s)",
    )
    p.add_argument(
        "--evaluate-train",
        type=int,
        default=0,
        metavar="N",
        help="--evaluate: on N training images (drawn with --seed) instead of the held-out "
        "ones, e.g. to choose a tracing option without looking at the held-out glacier",
    )
    p.add_argument("--holdout", default="", help="path/row groups to hold out (comma list)")
    p.add_argument(
        "--synthetic",
        type=float,
        default=0.3,
        help="fraction of synthetic fronts in a batch (1.0 = synthetic only)",
    )
    p.add_argument("--size", type=int, default=192, help="training tile size (px)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=128, help="channels of the H/16 features")
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument(
        "--aux-weight",
        type=float,
        default=1.0,
        help="weight of the training-only front heat-map loss (0: off)",
    )
    p.add_argument(
        "--aux-distance",
        action="store_true",
        help="the training-only dense head also regresses the signed distance "
        "to the front (glacier side positive)",
    )
    p.add_argument(
        "--vertex-weight",
        type=float,
        default=0.0,
        help="weight of an extra squared vertex-distance loss (0: off)",
    )
    p.add_argument(
        "--spacing-weight",
        type=float,
        default=0.0,
        help="weight of the vertex-spacing loss (ordered, evenly spaced vertices; 0: off)",
    )
    p.add_argument(
        "--orientation",
        choices=("fixed", "free"),
        default="fixed",
        help="fixed: loss against the front as oriented (glacier on the left); "
        "free: the smaller loss of the front and its reverse",
    )
    p.add_argument(
        "--scale-range",
        type=float,
        nargs=2,
        default=(0.7, 1.4),
        metavar=("LO", "HI"),
        help="zoom of the training views, log-uniform, relative to the front "
        "filling 85 %% of the tile (0.25 1.2 spans a whole FrontLearning "
        "image fitted into the tile up to a box tight around the front)",
    )
    p.add_argument(
        "--shift",
        type=float,
        default=0.2,
        help="the front's centre lands within this many tiles of the centre",
    )
    p.add_argument(
        "--init",
        choices=("centre", "line"),
        default="centre",
        help="snake start: all vertices at the centre (paper) or a straight "
        "line across the middle of the tile",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="held-out metrics every N steps to <log-dir>/<run>/"
        "heldout_curve.jsonl (0: only at the end)",
    )
    p.add_argument(
        "--no-index-feature",
        action="store_true",
        help="the authors' head input exactly (no vertex-index channel)",
    )
    p.add_argument("--pixel-size-m", type=float, default=FR.FRONTLEARNING_PIXEL_SIZE_M)
    p.add_argument("--model-version", default="1.0.0")
    p.add_argument("--metrics-json", help="also write the held-out metrics here")
    p.add_argument(
        "--base-model",
        default=None,
        help="warm start: a COBRA model exported by this project (.onnx; its "
        "architecture is taken from its metadata)",
    )
    from .common import add_trainer_args

    add_trainer_args(p, default_steps=3000, default_checkpoint_every=500)
    p.set_defaults(method="cobra")
    return p


def base_architecture(args: argparse.Namespace, in_channels: int) -> None:
    """Take the architecture of the warm-start model ``args.base_model`` (its metadata)."""
    from .export import read_spec

    spec = read_spec(args.base_model)
    if spec.task != "contour":
        raise ValueError(
            f"base model {args.base_model} is a '{spec.task}' model; COBRA "
            "starts only from a contour model"
        )
    arch = dict(spec.provenance.get("architecture") or {})
    if arch.get("in_channels", in_channels) != in_channels:
        raise ValueError(
            f"base model {args.base_model} takes {arch['in_channels']} band(s), "
            f"the training images have {in_channels}"
        )
    args.width = int(arch.get("width", args.width))
    args.head_dim = int(arch.get("head_dim", args.head_dim))
    args.no_index_feature = not arch.get("index_feature", not args.no_index_feature)
    args.init = str(arch.get("init", "centre"))


def train(args: argparse.Namespace) -> tuple[Cobra, dict[str, Any]]:
    """Train per ``args`` with the shared trainer; returns the model and metrics."""
    from .common import build_trainer, resume_checkpoint, setup_runtime

    setup_runtime(args)
    samples = load_samples(args)
    if not samples and args.synthetic < 1.0:
        raise SystemExit(
            "no training samples: give --frontlearning or --data "
            "(or --synthetic 1.0 for synthetic fronts only)"
        )
    train_s, test_s = _split_holdout(samples, args.holdout)
    log.info(
        "COBRA: %d training images, %d held out (%s), synthetic %.0f %%",
        len(train_s),
        len(test_s),
        args.holdout or "-",
        100 * args.synthetic,
    )
    in_ch = train_s[0].image.shape[0] if train_s else 1
    if args.base_model:
        base_architecture(args, in_ch)
    module = CobraModule(
        in_channels=in_ch,
        width=args.width,
        head_dim=args.head_dim,
        lr=args.lr,
        steps=args.steps,
        index_feature=not args.no_index_feature,
        aux_weight=args.aux_weight,
        vertex_weight=args.vertex_weight,
        spacing_weight=args.spacing_weight,
        orientation=args.orientation,
        init=args.init,
        aux_distance=args.aux_distance,
    )
    if args.base_model:
        from .export import load_onnx_weights

        load_onnx_weights(module.model, args.base_model)
    ckpt = resume_checkpoint(args)
    start = 0
    if ckpt:
        from .checkpoint import load_checkpoint_file

        start = int(load_checkpoint_file(ckpt).get("global_step", 0))
        log.info("resuming from %s at step %d", ckpt, start)
    ds = FrontDataset(
        train_s,
        length=args.steps * args.batch_size,
        size=args.size,
        synthetic=args.synthetic,
        seed=args.seed,
        in_channels=in_ch,
        scale_range=tuple(args.scale_range),
        shift=args.shift,
        offset=start * args.batch_size,
    )
    dl = torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch_size,
        shuffle=False,
        num_workers=args.num_workers,
        drop_last=True,
        persistent_workers=args.num_workers > 0,
    )
    callbacks = []
    if args.eval_every and test_s:
        from .common import run_dir

        callbacks.append(
            HeldoutCurve(
                test_s, args.size, args.eval_every, str(run_dir(args) / "heldout_curve.jsonl")
            )
        )
    trainer = build_trainer(args, callbacks)
    trainer.fit(module, train_dataloaders=dl, ckpt_path=ckpt)
    model = module.model.cpu().eval()
    metrics = evaluate(model, test_s, args.size) if test_s else {}
    metrics["train_images"] = len(train_s)
    return model, metrics


def main(argv: list[str] | None = None) -> int:
    from .common import progress_mode, run_cli

    args = build_parser().parse_args(argv)
    return run_cli(_main, args, json_mode=progress_mode(args) == "json")


def _main(args: argparse.Namespace) -> int:
    from .common import emit, progress_mode

    if args.evaluate:
        return _evaluate_main(args)
    if not args.out:
        raise SystemExit("--out is required (or --evaluate MODEL.onnx)")
    model, metrics = train(args)
    log.info("held-out metrics: %s", metrics)
    if progress_mode(args) == "json":
        emit("metrics", **metrics)
    else:
        print("held-out metrics: " + json.dumps(metrics), file=sys.stderr)
    if args.metrics_json:
        with open(args.metrics_json, "w") as fh:
            json.dump(metrics, fh, indent=1)
    from .export import code_version, training_command

    sources = []
    if args.frontlearning:
        sources.append("FrontLearning (Mohajerani et al. 2019, MIT), labels " + args.labels)
    if args.data:
        sources.append(f"Arctic Assist labels {FR.training_data_name(args.data)}")
    if args.synthetic > 0:
        sources.append(f"synthetic fronts ({100 * args.synthetic:.0f} % of tiles)")
    provenance = {
        "method": "cobra",
        "training_data": "; ".join(sources),
        "holdout": args.holdout or None,
        "steps": int(args.steps),
        "batch_size": int(args.batch_size),
        "tile_size": int(args.size),
        "metrics": metrics,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "command": training_command(),
        "architecture": {"backbone": "LightBackbone", **model.hparams_dict},
        "loss": (
            f"soft-DTW gamma 0.001 summed over iterations, orientation "
            f"{args.orientation}; vertex weight {args.vertex_weight}, spacing weight "
            f"{args.spacing_weight}, aux heat-map weight {args.aux_weight}"
            + (" + signed distance" if args.aux_distance else "")
        ),
        "init": args.init,
        "augmentation": {"scale_range": list(args.scale_range), "shift": args.shift},
    }
    spec = model_spec(
        model,
        pixel_size_m=args.pixel_size_m,
        provenance=provenance,
        version=args.model_version,
        tile_size=args.size,
    )
    export(model, spec, args.out, args.size)
    if progress_mode(args) == "json":
        emit("done", output=str(args.out), metrics=metrics)
    else:
        print(f"exported {args.out}", file=sys.stderr)
    return 0


def _evaluate_main(args: argparse.Namespace) -> int:
    """``--evaluate MODEL.onnx``: held-out metrics of an exported model, as JSON."""
    samples = load_samples(args)
    train_s, test_s = _split_holdout(samples, args.holdout)
    if args.evaluate_train:
        pick = np.random.default_rng(args.seed).choice(
            len(train_s), min(args.evaluate_train, len(train_s)), replace=False
        )
        test_s = [train_s[i] for i in sorted(pick)]
    if not test_s:
        raise SystemExit("--evaluate: no held-out image (give --holdout GROUPS)")
    run, tile = onnx_runner(args.evaluate)
    metrics = evaluate(run, test_s, tile, mirror=not args.no_mirror, snap=args.snap)
    print(json.dumps(metrics, indent=1))
    if args.metrics_json:
        with open(args.metrics_json, "w") as fh:
            json.dump(metrics, fh, indent=1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
