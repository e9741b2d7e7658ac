"""PixelDINO internals: centring, EMA teacher, the losses against hand computation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from arctic_assist.training import methods as M  # noqa: E402
from arctic_assist.training.methods import (  # noqa: E402
    PixelDINO,
    TrainConfig,
    bce_ignore,
    ema_momentum,
    soft_cross_entropy,
    teacher_targets,
)

torch.set_num_threads(1)


def _tiny(**kw) -> PixelDINO:
    kw = {"semi_start": 0.0, "semi_ramp": 0.0, **kw}  # the unlabelled term from step 0
    cfg = TrainConfig(method="pixeldino", width=4, n_pseudo=5, tile=32, total_steps=100, **kw)
    return PixelDINO(cfg)


def _identity_aug(monkeypatch):
    monkeypatch.setattr(M, "weak", lambda x, *t: x if not t else (x, *t))


def test_teacher_targets_use_raw_mean_and_stored_centre():
    t = torch.randn(2, 5, 3, 4)
    center = torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3])
    p, bc = teacher_targets(t, center, 0.5)
    assert torch.allclose(bc, t.mean(dim=(0, 2, 3)))  # raw, not centred
    expected = torch.softmax((t - center.view(1, -1, 1, 1)) / 0.5, dim=1)
    assert torch.allclose(p, expected)


def test_training_step_centre_update(monkeypatch):
    _identity_aug(monkeypatch)
    torch.manual_seed(0)
    m = _tiny()
    m.log = lambda *a, **k: None
    c0 = torch.randn(5)
    m.center.copy_(c0)
    x_u = torch.rand(3, 4, 32, 32)
    batch = {
        "x_l": torch.rand(2, 4, 32, 32),
        "y_l": torch.zeros(2, 32, 32, dtype=torch.uint8),
        "x_u": x_u,
    }
    with torch.no_grad():
        raw_mean = m.teacher.pseudo_logits(x_u).mean(dim=(0, 2, 3))
    m.training_step(batch, 0)
    assert torch.allclose(m._pending_center, raw_mean, atol=1e-6)
    assert torch.equal(m.center, c0)  # not yet updated
    m.after_optimizer_step()
    assert torch.allclose(m.center, 0.996 * c0 + 0.004 * raw_mean, atol=1e-6)


def test_teacher_has_no_grad_and_follows_ema_exactly(monkeypatch):
    _identity_aug(monkeypatch)
    torch.manual_seed(0)
    m = _tiny()
    m.log = lambda *a, **k: None
    assert all(not p.requires_grad for p in m.teacher.parameters())
    with torch.no_grad():  # make student and teacher differ
        for p in m.student.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    batch = {
        "x_l": torch.rand(2, 4, 32, 32),
        "y_l": (torch.rand(2, 32, 32) > 0.5).to(torch.uint8),
        "x_u": torch.rand(2, 4, 32, 32),
    }
    loss = m.training_step(batch, 0)
    loss.backward()
    assert all(p.grad is None for p in m.teacher.parameters())
    assert any(p.grad is not None for p in m.student.parameters())
    before = [p.detach().clone() for p in m.teacher.parameters()]
    m.after_optimizer_step()
    lam = ema_momentum(0, 100, *m.cfg.ema_schedule())
    assert lam == pytest.approx(0.9)  # 100 steps: 1 - 20/100, floored at 0.9
    for t0, t1, s in zip(before, m.teacher.parameters(), m.student.parameters()):
        assert torch.allclose(t1, lam * t0 + (1 - lam) * s.detach(), atol=1e-7)


def test_ema_schedule_cosine():
    assert ema_momentum(0, 1000) == pytest.approx(0.996)
    assert ema_momentum(1000, 1000) == pytest.approx(1.0)
    assert ema_momentum(500, 1000) == pytest.approx(0.998)


def test_ema_schedule_is_tied_to_the_run_length():
    from arctic_assist.training.train import build_parser, config_from_args

    base = ["--data", "d", "--out", "m.onnx", "--steps", "600"]
    short = config_from_args("pixeldino", build_parser("pixeldino").parse_args(base), 4)
    start, end = short.ema_schedule()
    # 600 steps: the teacher averages ~30 steps at the start, ~120 at the end
    assert (start, end) == pytest.approx((1 - 20 / 600, 1 - 5 / 600))

    # the exported teacher holds almost nothing of the first half of the run
    # (with the paper's 0.996 -> 1 squeezed into 600 steps: most of it)
    def weight_of_first_half(s0, s1):
        w = 1.0
        for s in range(300, 600):
            w *= ema_momentum(s, 600, s0, s1)
        return w

    assert weight_of_first_half(start, end) < 0.05
    assert weight_of_first_half(0.996, 1.0) > 0.6
    # 200k steps: the paper's schedule
    assert TrainConfig(total_steps=200_000).ema_schedule() == (0.996, 1.0)
    const = config_from_args(
        "pixeldino",
        build_parser("pixeldino").parse_args(base + ["--ema-start", "0.996", "--ema-end", "0.996"]),
        4,
    )
    lams = [ema_momentum(s, const.total_steps, *const.ema_schedule()) for s in (0, 300, 599)]
    assert lams == pytest.approx([0.996] * 3)


def test_unlabelled_term_waits_then_ramps():
    c = TrainConfig(total_steps=1000, semi_start=0.25, semi_ramp=0.25)
    assert [c.semi_weight_at(s) for s in (0, 249)] == [0.0, 0.0]
    assert c.semi_weight_at(250) == pytest.approx(1 / 250)
    assert c.semi_weight_at(374) == pytest.approx(0.5)
    assert c.semi_weight_at(499) == 1.0 and c.semi_weight_at(999) == 1.0
    assert TrainConfig(total_steps=10, semi_start=0, semi_ramp=0).semi_weight_at(0) == 1.0


def test_warm_up_step_is_supervised_only_and_skips_the_teacher(monkeypatch):
    _identity_aug(monkeypatch)
    torch.manual_seed(2)
    m = _tiny(semi_start=0.5, semi_ramp=0.1)
    logged = {}
    m.log = lambda name, value, **k: logged.__setitem__(name, float(value))
    calls = []
    monkeypatch.setattr(m.teacher, "pseudo_logits", lambda x: calls.append(x))
    batch = {
        "x_l": torch.rand(2, 4, 32, 32),
        "y_l": (torch.rand(2, 32, 32) > 0.5).to(torch.uint8),
        "x_u": torch.rand(2, 4, 32, 32),
    }
    loss = m.training_step(batch, 0)
    assert not calls and "loss_dino" not in logged
    assert float(loss.detach()) == pytest.approx(logged["loss_sup"])
    assert m._pending_center is None


def test_dice_by_hand_and_ignore():
    from arctic_assist.training.methods import dice_ignore, segmentation_loss

    logits = torch.tensor([2.0, -1.0, 0.5, 3.0]).view(1, 1, 2, 2)
    target = torch.tensor([1, 0, 255, 0], dtype=torch.uint8).view(1, 2, 2)
    p = [1 / (1 + math.exp(-v)) for v in (2.0, -1.0, 3.0)]
    y = [1, 0, 0]
    inter = sum(a * b for a, b in zip(p, y))
    expected = 1 - (2 * inter + 1) / (sum(p) + sum(y) + 1)
    assert float(dice_ignore(logits, target)) == pytest.approx(expected, rel=1e-6)
    both = segmentation_loss(logits, target, TrainConfig(loss="bce_dice", dice_weight=1.0))
    assert float(both) == pytest.approx(float(bce_ignore(logits, target)) + expected, rel=1e-6)
    assert float(segmentation_loss(logits, target, TrainConfig(loss="bce"))) == pytest.approx(
        float(bce_ignore(logits, target))
    )


def test_bce_ignore_by_hand():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0]).view(1, 1, 2, 2)
    target = torch.tensor([1, 0, 255, 0], dtype=torch.uint8).view(1, 2, 2)

    def bce(z, y):
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    expected = (bce(2.0, 1) + bce(-1.0, 0) + bce(3.0, 0)) / 3
    assert float(bce_ignore(logits, target)) == pytest.approx(expected, rel=1e-6)
    assert float(bce_ignore(logits, torch.full_like(target, 255))) == 0.0


def test_soft_cross_entropy_by_hand():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]).T.reshape(1, 3, 1, 2)
    s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]).T.reshape(1, 3, 1, 2)
    valid = torch.tensor([[[True, False]]])

    def ce(pv, sv):
        lse = math.log(sum(math.exp(v) for v in sv))
        return -sum(a * (b - lse) for a, b in zip(pv, sv))

    c0 = ce([0.7, 0.2, 0.1], [1.0, 0.0, -1.0])
    c1 = ce([0.1, 0.1, 0.8], [0.5, 0.5, 2.0])
    assert float(soft_cross_entropy(p, s, valid)) == pytest.approx(c0, rel=1e-6)
    assert float(soft_cross_entropy(p, s)) == pytest.approx((c0 + c1) / 2, rel=1e-6)


def test_total_loss_is_bce_plus_beta_ce(monkeypatch):
    _identity_aug(monkeypatch)
    torch.manual_seed(1)
    m = _tiny()
    logged = {}
    m.log = lambda name, value, **k: logged.__setitem__(name, float(value))
    batch = {
        "x_l": torch.rand(2, 4, 32, 32),
        "y_l": (torch.rand(2, 32, 32) > 0.5).to(torch.uint8),
        "x_u": torch.rand(2, 4, 32, 32),
    }
    loss = m.training_step(batch, 0)
    assert float(loss.detach()) == pytest.approx(
        logged["loss_sup"] + 0.1 * logged["loss_dino"], rel=1e-5
    )


def test_default_config_is_the_papers_where_the_paper_applies():
    """The paper's hyperparameters, except what is tied to the run length (EMA horizon) or
    measured to matter on little data (warm-up before the unlabelled term, BCE + Dice)."""
    c = TrainConfig()
    assert (
        c.n_pseudo,
        c.teacher_temp,
        c.student_temp,
        c.center_momentum,
        c.beta,
        c.lr,
        c.lr_start,
        c.weight_decay,
        c.batch_labelled,
        c.batch_unlabelled,
        c.tile,
        c.total_steps,
        c.warmup_steps,
    ) == (24, 0.5, 1.0, 0.996, 0.1, 1e-3, 1e-7, 1e-3, 16, 16, 192, 200_000, 10_000)
    assert c.effective_warmup() == 10_000
    assert c.ema_schedule() == (0.996, 1.0)  # at the paper's 200k steps
    assert (c.semi_start, c.semi_ramp, c.loss) == (0.25, 0.25, "bce_dice")
