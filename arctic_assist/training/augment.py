"""Weak and strong augmentation in torch, with ONE sampling grid shared by image and targets.

- :func:`weak`: random flips and 90-degree rotations, exact for images and label masks.
- :class:`StrongAugment`: geometric part (flips, 90-degree rotations, rotation +-30 deg,
  zoom crop 1-2, elastic warp) built as a single ``grid_sample`` grid per sample, applied
  to the image (bilinear), soft labels (bilinear) and hard masks (nearest); pixels sampled
  from outside the frame get no target (a validity mask / label 255). The photometric part
  (gamma, brightness, contrast, Gaussian blur p=0.5) acts on the image only.
- ``independent_warps=True`` reproduces the authors' released code, which warps the
  student view and the soft labels with *different* random parameters (an ablation).

Images are float tensors (after the model's normalisation, about [0, 1]), N x C x H x W;
the photometric part never clips them (see :meth:`StrongAugment.photometric`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.spec import IGNORE


def _rand(n: int, generator, device, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator).to(device)


def weak(x: torch.Tensor, *targets: torch.Tensor, generator: torch.Generator | None = None):
    """Random flip + k*90 degree rotation per sample, the same for ``x`` and ``targets``.

    Returns ``x`` alone if no targets are given, else a tuple ``(x, *targets)``.
    """
    n = x.shape[0]
    flips = torch.rand(n, generator=generator) < 0.5
    ks = torch.randint(0, 4, (n,), generator=generator)
    if x.shape[-1] != x.shape[-2]:
        ks = (ks % 2) * 2  # only 0/180 degrees keep a non-square shape
    outs = [x, *targets]
    res = [[] for _ in outs]
    for i in range(n):
        for j, t in enumerate(outs):
            v = t[i]
            if flips[i]:
                v = torch.flip(v, dims=(-1,))
            v = torch.rot90(v, int(ks[i]), dims=(-2, -1))
            res[j].append(v)
    stacked = [torch.stack(r) for r in res]
    return stacked[0] if not targets else tuple(stacked)


@dataclass
class StrongConfig:
    rotation_deg: float = 30.0
    zoom_min: float = 1.0
    zoom_max: float = 2.0
    elastic_alpha_px: float = 4.0  # max displacement amplitude, pixels
    elastic_grid: int = 6  # control points per side of the random field
    flips: bool = True
    gamma: tuple[float, float] = (0.75, 1.33)
    brightness: float = 0.5
    contrast: float = 0.5
    blur_sigma: float = 2.0
    blur_p: float = 0.5


class StrongAugment:
    """Strong augmentation; call :meth:`geometry` once, then warp any number of tensors."""

    def __init__(self, config: StrongConfig | None = None) -> None:
        self.cfg = config or StrongConfig()

    # ---------------------------------------------------------------- geometry
    def geometry(
        self, n: int, h: int, w: int, device=None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A sampling grid N x H x W x 2 (normalised x, y; ``align_corners=False``)."""
        c = self.cfg
        ang = _rand(n, generator, "cpu", -c.rotation_deg, c.rotation_deg) * math.pi / 180.0
        zoom = _rand(n, generator, "cpu", c.zoom_min, c.zoom_max)
        scale = 1.0 / zoom  # crop side relative to the frame
        # crop centre: keep the (unrotated) crop inside the frame
        tx = _rand(n, generator, "cpu", -1.0, 1.0) * (1.0 - scale)
        ty = _rand(n, generator, "cpu", -1.0, 1.0) * (1.0 - scale)
        k = (
            torch.randint(0, 4, (n,), generator=generator)
            if c.flips
            else torch.zeros(n, dtype=torch.long)
        )
        flip = (
            (torch.rand(n, generator=generator) < 0.5)
            if c.flips
            else torch.zeros(n, dtype=torch.bool)
        )
        total = ang + k.float() * (math.pi / 2)
        cos, sin = torch.cos(total), torch.sin(total)
        fx = torch.where(flip, -1.0, 1.0)
        # output coords (u, v) -> input coords: p = t + s * R * diag(fx, 1) * (u, v)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = scale * cos * fx
        theta[:, 0, 1] = -scale * sin
        theta[:, 1, 0] = scale * sin * fx
        theta[:, 1, 1] = scale * cos
        theta[:, 0, 2] = tx
        theta[:, 1, 2] = ty
        # rotate in pixel space, not in normalised space: A_norm = D^-1 A_pix D, D = diag(w, h)
        if h != w:
            d = torch.diag(torch.tensor([float(w), float(h)]))
            theta[:, :, :2] = torch.linalg.inv(d) @ theta[:, :, :2] @ d
        grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
        if c.elastic_alpha_px > 0:
            g = max(2, int(c.elastic_grid))
            noise = torch.rand(n, 2, g, g, generator=generator) * 2 - 1
            field = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=True)
            field = field.permute(0, 2, 3, 1)
            px = torch.tensor([2.0 / w, 2.0 / h])
            grid = grid + field * c.elastic_alpha_px * px
        return grid.to(device) if device is not None else grid

    @staticmethod
    def warp(x: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Sample ``x`` (float) on ``grid``; outside the frame reflects (see :meth:`valid`)."""
        return F.grid_sample(
            x, grid.to(x.dtype), mode=mode, padding_mode="reflection", align_corners=False
        )

    @staticmethod
    def valid(grid: torch.Tensor) -> torch.Tensor:
        """N x H x W bool: the sample point lies inside the source frame."""
        inside = (grid[..., 0].abs() <= 1.0) & (grid[..., 1].abs() <= 1.0)
        return inside

    def warp_mask(self, mask: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Hard labels N x H x W (uint8/long, 255 = ignore): nearest; outside -> 255."""
        m = mask.float().unsqueeze(1)
        out = F.grid_sample(
            m, grid.to(m.dtype), mode="nearest", padding_mode="border", align_corners=False
        )[:, 0]
        out = torch.where(self.valid(grid), out, torch.full_like(out, IGNORE))
        return out.round().to(mask.dtype)

    # ---------------------------------------------------------------- photometric
    def photometric(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Gamma, brightness, contrast and Gaussian blur (p) on the image only, scaled to it.

        Nothing is clipped: after the model's normalisation a band spans a few hundredths
        (standard deviation 0.03-0.06 for Sentinel-2), so fixed offsets such as the paper's
        brightness +-0.5 and a clamp to [0, 1] would flatten most samples. Instead, per
        sample and band (GIMP-style levels, all invertible):

        - gamma ``g`` in ``cfg.gamma`` on the band rescaled to its own [min, max]:
          ``lo + (hi - lo) * ((x - lo) / (hi - lo)) ** g`` (same range, monotone);
        - contrast: deviations from the band mean times ``a``, ``log a`` uniform in
          ``+-log(1 + cfg.contrast)``;
        - brightness: ``+ b * std``, ``b`` uniform in ``+-cfg.brightness`` (in units of the
          band's standard deviation in the sample);
        - Gaussian blur (sigma ``cfg.blur_sigma``) with probability ``cfg.blur_p``.
        """
        c = self.cfg
        n = x.shape[0]
        shape = (n, 1, 1, 1)
        dev, dt = x.device, x.dtype
        lg = torch.log(torch.tensor(c.gamma))
        gamma = torch.exp(_rand(n, generator, "cpu", float(lg[0]), float(lg[1]))).view(shape)
        beta = _rand(n, generator, "cpu", -c.brightness, c.brightness).view(shape)
        la = math.log1p(max(0.0, c.contrast))
        alpha = torch.exp(_rand(n, generator, "cpu", -la, la)).view(shape)
        blur = (torch.rand(n, generator=generator) < c.blur_p).view(shape)
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
        span = (hi - lo).clamp_min(1e-6)
        y = lo + span * ((x - lo) / span).clamp(0, 1).pow(gamma.to(dev, dt))
        mean = y.mean(dim=(-2, -1), keepdim=True)
        std = y.std(dim=(-2, -1), keepdim=True) if y.shape[-1] * y.shape[-2] > 1 else 0 * mean
        y = mean + alpha.to(dev, dt) * (y - mean) + beta.to(dev, dt) * std
        if c.blur_p > 0 and bool(blur.any()):
            y = torch.where(blur.to(dev), gaussian_blur(y, c.blur_sigma), y)
        return y

    # ---------------------------------------------------------------- convenience
    def __call__(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        """Strong augmentation of a labelled batch: (image, hard mask) -> warped pair."""
        grid = self.geometry(x.shape[0], x.shape[-2], x.shape[-1], x.device, generator)
        xw = self.photometric(self.warp(x, grid), generator)
        if mask is None:
            return xw
        return xw, self.warp_mask(mask, grid)

    def student_view(
        self,
        v1: torch.Tensor,
        soft: torch.Tensor,
        *,
        independent_warps: bool = False,
        generator: torch.Generator | None = None,
    ):
        """PixelDINO: (weak view, teacher soft labels) -> (v2, warped soft labels, valid).

        One set of geometric parameters for both (the paper); ``independent_warps`` draws a
        second set for the soft labels (the released code). ``valid`` (N x H x W, bool) is
        False where the student's pixel came from outside the frame (or the target's did).
        """
        n, _, h, w = v1.shape
        grid = self.geometry(n, h, w, v1.device, generator)
        v2 = self.photometric(self.warp(v1, grid), generator)
        grid_t = self.geometry(n, h, w, v1.device, generator) if independent_warps else grid
        soft_w = self.warp(soft, grid_t)
        valid = self.valid(grid) & self.valid(grid_t)
        return v2, soft_w, valid


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflect padding), kernel radius 3 sigma."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    r = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    k = k[(k.numel() // 2 - r) : (k.numel() // 2 + r + 1)]
    k = k / k.sum()
    y = F.pad(x, (r, r, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


# ----------------------------------------------------------------------------- radiometric


@dataclass
class RadiometricConfig:
    """Scene-to-scene radiometric change, drawn per sample (see :class:`Radiometric`).

    ``gain``: the common gain's log is uniform in ``+-log(1 + gain)`` (0.3: x 0.77 .. 1.3);
    ``band_gain``: each band's own extra log-gain, uniform in ``+-band_gain``;
    ``offset``: a common additive term, uniform in ``offset`` (lo, hi), times each band's
    mean raw value in the sample (haze adds, a darker calibration removes);
    ``band_offset``: each band's own extra offset, uniform in ``+-band_offset`` (same unit).
    ``p``: the share of samples changed. Zero ``gain`` and ``offset`` switch it off.
    """

    gain: float = 0.3
    band_gain: float = 0.05
    offset: tuple[float, float] = (-0.1, 0.3)
    band_offset: float = 0.05
    p: float = 0.8

    @property
    def active(self) -> bool:
        return self.p > 0 and (self.gain > 0 or self.offset != (0.0, 0.0) or self.band_gain > 0)


class Radiometric:
    """Another scene's radiometry: ``raw' = g_b * raw + o_b * mean_b``, in raw band units.

    A model that sees one scene learns its absolute levels: on Peel, the bundled model
    trained without this falls from IoU 0.70 to 0.10 when the image is multiplied by 0.8
    and to 0.00 at x 1.25 (``benchmarks/bench_rts_shift.py``). Atmosphere, season, sun
    and sensor calibration change levels like this from scene to scene, so each training
    sample is taken back to raw values through the exact inverse of the model's
    normalisation, changed, and normalised again (quantised as the plugin quantises).
    Pixels at 0 after normalisation (padding, nodata fill) stay 0.
    """

    def __init__(self, normalization, config: RadiometricConfig | None = None) -> None:
        from ..core.spec import Normalization, parse_normalization

        if isinstance(normalization, Normalization):
            self.norm = normalization
        else:
            norm = dict(normalization or {"type": "none"})
            n_bands = max(len(norm.get("mean") or ()), 1)
            self.norm = parse_normalization(norm, n_bands)
        self.cfg = config or RadiometricConfig()
        if self.norm.type not in ("none", "scale", "standardize", "pixeldino_logsigmoid"):
            raise ValueError(f"radiometric augmentation: unknown normalisation {self.norm.type}")

    def to_raw(self, x: torch.Tensor) -> torch.Tensor:
        """Raw band values (float64) of normalised ``x`` (N x C x H x W): the exact inverse
        of the plugin's normalisation (``core.normalize.denormalize``)."""
        from ..core.normalize import denormalize

        arr = x.detach().cpu().numpy()
        raw = np.stack([denormalize(sample, self.norm) for sample in arr])
        return torch.from_numpy(raw).to(x.device)

    def from_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """The plugin's normalisation of raw values (``core.normalize.apply_normalization``;
        float32, quantised as the plugin quantises)."""
        from ..core.normalize import apply_normalization

        arr = raw.detach().cpu().numpy().astype(np.float64)
        out = np.stack([apply_normalization(sample, self.norm) for sample in arr])
        return torch.from_numpy(out).to(raw.device)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.cfg
        if not c.active:
            return x
        n, ch = x.shape[0], x.shape[1]
        lg = math.log1p(max(0.0, c.gain))
        log_g = _rand(n, generator, "cpu", -lg, lg).view(n, 1) + (
            _rand(n * ch, generator, "cpu", -c.band_gain, c.band_gain).view(n, ch)
        )
        off = _rand(n, generator, "cpu", c.offset[0], c.offset[1]).view(n, 1) + (
            _rand(n * ch, generator, "cpu", -c.band_offset, c.band_offset).view(n, ch)
        )
        on = (torch.rand(n, generator=generator) < c.p).view(n, 1)
        log_g = torch.where(on, log_g, torch.zeros_like(log_g))
        off = torch.where(on, off, torch.zeros_like(off))
        dt, dev = x.dtype, x.device
        raw = self.to_raw(x.double())
        valid = x != 0
        mean = (raw * valid).sum(dim=(-2, -1)) / valid.sum(dim=(-2, -1)).clamp_min(1)
        shape = (n, ch, 1, 1)
        changed = torch.exp(log_g).to(dev).view(shape) * raw + (off.to(dev) * mean.cpu()).to(
            dev
        ).view(shape)
        y = self.from_raw(changed).to(dt)
        return torch.where(valid, y, x)
