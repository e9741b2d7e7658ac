"""The command dispatcher, pooled evaluation, the LR schedule, the U-Net contract."""

from __future__ import annotations

import numpy as np
import pytest

from arctic_assist.training.__main__ import main as dispatch


def test_dispatch_help_and_unknown(capsys):
    assert dispatch([]) == 0
    out = capsys.readouterr().out
    for cmd in (
        "supervised",
        "supervised_aug",
        "fixmatchseg",
        "adversarial",
        "pixeldino",
        "evaluate",
        "export",
        "make-dataset",
        "cobra",
    ):
        assert cmd in out
    assert dispatch(["nonsense"]) == 2


def test_dispatch_reaches_each_command(capsys):
    pytest.importorskip("torch")
    for cmd in ("pixeldino", "evaluate", "export", "make-dataset"):
        with pytest.raises(SystemExit) as exc:
            dispatch([cmd, "--help"])
        assert exc.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_pooled_iou_sums_counts_over_chips():
    from arctic_assist.training.evaluate import confusion, scores

    m1 = np.array([[1, 1], [0, 255]], np.uint8)
    p1 = np.array([[0.9, 0.2], [0.7, 0.9]])
    m2 = np.array([[0, 0], [1, 0]], np.uint8)
    p2 = np.array([[0.1, 0.1], [0.6, 0.1]])
    c = confusion(p1, m1) + confusion(p2, m2)
    assert c.tolist() == [2, 1, 1, 3]  # TP, FP, FN, TN (255 ignored)
    s = scores(c)
    assert s["iou"] == pytest.approx(2 / 4) and s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx(4 / 6)


def test_lr_schedule_warmup_then_cosine():
    pytest.importorskip("torch")
    from arctic_assist.training.common import cosine_warmup_lambda

    f = cosine_warmup_lambda(1000, 100, 1e-3, 1e-7)
    assert f(0) * 1e-3 == pytest.approx(1e-7)
    assert f(100) * 1e-3 == pytest.approx(1e-3)
    assert f(550) * 1e-3 == pytest.approx(0.5e-3)
    assert f(1000) == pytest.approx(0.0, abs=1e-9)


def test_unet_contract():
    torch = pytest.importorskip("torch")
    from arctic_assist.training.unet import UNet, count_parameters

    net = UNet(4, 16)
    assert 1.8e6 < count_parameters(net) < 2.0e6  # about 1.9 M (DESIGN s4)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    small = UNet(4, 4, 24)
    rts, pseudo = small(torch.rand(1, 4, 48, 32))
    assert rts.shape == (1, 1, 48, 32) and pseudo.shape == (1, 24, 48, 32)
