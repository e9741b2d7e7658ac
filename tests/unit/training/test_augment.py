"""Augmentation: one geometric transform for view and targets, validity, photometric only on
the image, the released code's independent warps as an ablation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from arctic_assist.training.augment import IGNORE, StrongAugment, StrongConfig, weak  # noqa: E402

torch.set_num_threads(1)

NO_PHOTO = dict(gamma=(1.0, 1.0), brightness=0.0, contrast=0.0, blur_p=0.0)


def _scene(k=5, size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, k, (2, 1, size // 8, size // 8), generator=g).float()
    labels = torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")[:, 0].long()
    palette = torch.rand(3, k, generator=g)  # a colour per class
    onehot = torch.nn.functional.one_hot(labels, k).permute(0, 3, 1, 2).float()
    image = torch.einsum("ck,nkhw->nchw", palette, onehot)
    return image, onehot, palette, labels


def test_shared_warp_keeps_image_and_soft_labels_aligned():
    image, onehot, palette, _ = _scene()
    aug = StrongAugment(StrongConfig(**NO_PHOTO))
    torch.manual_seed(3)
    v2, soft, valid = aug.student_view(image, onehot)
    decoded = torch.einsum("ck,nkhw->nchw", palette, soft)
    assert valid.float().mean() > 0.3
    diff = (v2 - decoded).abs().amax(dim=1)[valid]
    assert float(diff.max()) < 1e-5  # pixel for pixel
    assert torch.allclose(soft.sum(1)[valid], torch.ones_like(soft.sum(1)[valid]), atol=1e-5)


def test_independent_warps_do_not_align():
    image, onehot, palette, _ = _scene()
    aug = StrongAugment(StrongConfig(**NO_PHOTO))
    torch.manual_seed(3)
    v2, soft, valid = aug.student_view(image, onehot, independent_warps=True)
    decoded = torch.einsum("ck,nkhw->nchw", palette, soft)
    assert float((v2 - decoded).abs().amax(dim=1)[valid].mean()) > 0.05


def test_outside_pixels_have_no_target_and_masks_get_ignore():
    image, _, _, labels = _scene()
    aug = StrongAugment(StrongConfig(zoom_min=1.0, zoom_max=1.0, rotation_deg=30.0))
    torch.manual_seed(0)
    grid = aug.geometry(2, 40, 40)
    valid = aug.valid(grid)
    assert not bool(valid.all())  # rotation brings in the outside
    m = aug.warp_mask(labels.to(torch.uint8), grid)
    assert bool((m[~valid] == IGNORE).all())
    assert bool((m[valid] != IGNORE).all())


def test_photometric_only_on_image_and_hard_mask_alignment():
    image, onehot, palette, labels = _scene()
    aug = StrongAugment()
    torch.manual_seed(5)
    x, m = aug(image, labels.to(torch.uint8))
    assert x.shape == image.shape and m.shape == labels.shape
    assert set(m.unique().tolist()) <= set(range(5)) | {IGNORE}  # labels never blended
    assert torch.isfinite(x).all()


def test_photometric_keeps_a_low_contrast_signal():
    """Sentinel-2 after the model's normalisation: bands around 0.4 with std 0.04. The
    photometric part must keep the signal: no sample flattened by clipping, pixel order
    kept within each band (monotone, no blur), contrast changed by a bounded factor."""
    g = torch.Generator().manual_seed(0)
    x = 0.4 + 0.04 * torch.randn(64, 4, 32, 32, generator=g)
    aug = StrongAugment(StrongConfig(blur_p=0.0))
    y = aug.photometric(x, generator=g)
    flat = x.flatten(2)
    out = y.flatten(2)
    # order within each band is kept (monotone maps only)
    in_order = out.gather(-1, flat.argsort(-1))
    assert float(in_order.diff(dim=-1).min()) > -1e-6
    ratio = out.std(-1) / flat.std(-1)
    assert float(ratio.min()) > 0.3 and float(ratio.max()) < 3.0
    # the old recipe (brightness +-0.5 then a clamp to [0, 1]) flattened many samples
    clipped = ((out <= 0) | (out >= 1)).float().mean(-1)
    assert float(clipped.max()) == 0.0
    assert float(y.mean()) == pytest.approx(0.4, abs=0.05)


def test_weak_is_exact_and_shared():
    image, _, palette, labels = _scene()
    torch.manual_seed(1)
    x, y = weak(image, labels)
    recoloured = palette[:, y].permute(1, 0, 2, 3)
    assert torch.allclose(x, recoloured)


# ----------------------------------------------------------------------------- radiometric

LOGSIG = {"type": "pixeldino_logsigmoid", "scale": 0.005, "offset": 2.1, "gain": 2.5}


def _normalised(norm: dict, raw):

    from arctic_assist.core.normalize import apply_normalization
    from arctic_assist.core.spec import parse_normalization

    n = parse_normalization(norm, raw.shape[0])
    return torch.from_numpy(apply_normalization(raw, n))[None], n


@pytest.mark.parametrize(
    "norm",
    [
        LOGSIG,
        {"type": "scale", "scale": 1e-4, "offset": 0.0},
        {"type": "standardize", "scale": 1 / 255, "mean": [0.4, 0.5, 0.3], "std": [0.2, 0.1, 0.3]},
    ],
)
def test_radiometric_goes_through_raw_values_exactly(norm):
    """A gain applied to normalised samples equals the plugin normalising the changed raw
    values (within one quantisation step of the log-sigmoid)."""
    import numpy as np

    from arctic_assist.training.augment import Radiometric, RadiometricConfig

    rng = np.random.default_rng(0)
    hi = 250 if norm["type"] == "standardize" else 5000
    raw = rng.integers(20, hi, size=(3, 12, 12)).astype(np.uint16 if hi > 255 else np.uint8)
    x, _ = _normalised(norm, raw)
    changed, _ = _normalised(norm, raw.astype(np.float64) * 0.8)
    cfg = RadiometricConfig(gain=0.0, band_gain=0.0, offset=(0.0, 0.0), band_offset=0.0, p=1.0)
    rad = Radiometric(norm, cfg)
    assert not cfg.active and torch.equal(rad(x), x)  # switched off: untouched
    back = rad.from_raw(rad.to_raw(x.double()) * 0.8).float()
    step = 1 / 255 if norm["type"] == "pixeldino_logsigmoid" else 1e-5
    assert float((back - changed).abs().max()) <= step + 1e-5


def test_radiometric_changes_levels_per_sample_keeps_zero_and_is_seeded():
    import numpy as np

    from arctic_assist.training.augment import Radiometric, RadiometricConfig

    raw = np.random.default_rng(1).integers(300, 3000, size=(4, 16, 16)).astype(np.uint16)
    x, _ = _normalised(LOGSIG, raw)
    x = x.repeat(6, 1, 1, 1)
    x[:, :, :3] = 0  # nodata fill / padding rows
    rad = Radiometric(LOGSIG, RadiometricConfig(p=1.0))
    y = rad(x, torch.Generator().manual_seed(0))
    assert torch.equal(y[:, :, :3], x[:, :, :3])  # zeros stay zeros
    means = (y - x)[:, :, 3:].mean(dim=(1, 2, 3))
    assert float(means.abs().min()) > 0  # every sample changed ...
    assert float(means.max() - means.min()) > 0.02  # ... each differently
    assert torch.equal(y, rad(x, torch.Generator().manual_seed(0)))
    untouched = Radiometric(LOGSIG, RadiometricConfig(p=0.0))(x, torch.Generator().manual_seed(0))
    assert torch.equal(untouched, x)
