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
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_weak_is_exact_and_shared():
    image, _, palette, labels = _scene()
    torch.manual_seed(1)
    x, y = weak(image, labels)
    recoloured = palette[:, y].permute(1, 0, 2, 3)
    assert torch.allclose(x, recoloured)
