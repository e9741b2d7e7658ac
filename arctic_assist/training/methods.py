"""PixelDINO and its four baselines as Lightning modules, with one config of paper defaults.

Batches are dicts: ``x_l`` (N x C x H x W float in the model's normalised range), ``y_l``
(N x H x W uint8: 0 background, 1 RTS, 255 ignore) and, for the semi-supervised methods,
``x_u`` (M x C x H x W unlabelled tiles).

Methods (``METHODS``):

- ``supervised``: BCE on the RTS head, no augmentation;
- ``supervised_aug``: the same after weak + strong augmentation;
- ``fixmatchseg``: + BCE on the strong view of unlabelled tiles against pseudo-labels made by
  the *current* model on the weak view (p > 0.8 -> 1, p < 0.2 -> 0, else ignored), the
  pseudo-mask warped with the image by the same grid;
- ``adversarial`` (Hung et al. 2018): fully convolutional discriminator on probability
  maps; the generator loss uses it (adversarial terms on labelled and unlabelled maps and the
  semi-supervised self-taught term where the discriminator is confident), the
  discriminator is trained by its own Adam optimiser (Lightning manual optimisation);
- ``pixeldino``: EMA teacher, centred and sharpened soft pseudo-classes (K=24) on the weak
  view, student pseudo-class head on the strong view, the corrected step of DESIGN s4.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
import lightning as L
from torch import nn

from ..core.spec import IGNORE
from .augment import Radiometric, RadiometricConfig, StrongAugment, StrongConfig, weak
from .common import cosine_warmup_lambda
from .unet import UNet

METHODS = ("supervised", "supervised_aug", "fixmatchseg", "adversarial", "pixeldino")
SEMI_SUPERVISED = ("fixmatchseg", "adversarial", "pixeldino")


@dataclass
class TrainConfig:
    """All hyperparameters; defaults are the paper's (PixelDINO, TGRS 2024)."""

    method: str = "pixeldino"
    in_channels: int = 4
    width: int = 16
    n_pseudo: int = 24  # K
    # optimisation
    total_steps: int = 200_000
    lr: float = 1e-3
    lr_start: float = 1e-7
    warmup_steps: int = 10_000  # capped at total_steps // 20 for short runs
    weight_decay: float = 1e-3
    batch_labelled: int = 16
    batch_unlabelled: int = 16
    tile: int = 192
    # PixelDINO
    teacher_temp: float = 0.5
    student_temp: float = 1.0
    center_momentum: float = 0.996
    # None: tied to the run length (see ema_schedule); the paper's 0.996 -> 1.0 at 200k steps
    ema_start: float | None = None
    ema_end: float | None = None
    beta: float = 0.1
    # the unlabelled term starts after this fraction of the run and ramps in linearly over
    # the next semi_ramp (a pseudo-label term that starts before the supervised head has
    # left the all-background plateau teaches "background"); 0, 0 = from the first step
    semi_start: float = 0.25
    semi_ramp: float = 0.25
    # supervised loss: "bce" (the paper's) or "bce_dice" (BCE + soft Dice over the batch:
    # thaw slumps are a few percent of the pixels)
    loss: str = "bce_dice"
    dice_weight: float = 1.0
    independent_warps: bool = False  # True: the released code's independent warps
    # FixMatchSeg
    fixmatch_hi: float = 0.8
    fixmatch_lo: float = 0.2
    fixmatch_weight: float = 1.0
    # adversarial (Hung et al. 2018)
    adv_lr: float = 1e-4
    adv_weight_labelled: float = 0.01
    adv_weight_unlabelled: float = 0.001
    semi_weight: float = 0.1
    semi_threshold: float = 0.2
    semi_start_step: int = 0
    disc_width: int = 64
    strong: StrongConfig = field(default_factory=StrongConfig)
    # another scene's levels for every labelled sample and the student's view (all methods,
    # ``supervised`` included: it changes no geometry); off by default (p = 0): measured on
    # Peel it costs 13 points of IoU at 600 steps, and detection's scene adaptation
    # (arctic_assist.core.adapt) removes such changes exactly instead
    radiometric: RadiometricConfig = field(default_factory=lambda: RadiometricConfig(p=0.0))

    def effective_warmup(self) -> int:
        return max(1, min(int(self.warmup_steps), int(self.total_steps) // 20))

    def ema_schedule(self) -> tuple[float, float]:
        """Teacher momentum (start, end) of the cosine schedule, tied to the run length.

        The paper's 0.996 -> 1.0 is made for 200k steps; over a few hundred steps it leaves a
        teacher made of the first, untrained weights. Auto (None): the teacher averages about
        ``steps / 20`` steps at the start and ``steps / 5`` at the end (momentum
        ``1 - 1/horizon``), capped by the paper's values, so 200k steps give the paper's
        schedule and 600 steps a teacher of the last ~120 steps.
        """
        n = max(1, int(self.total_steps))
        start = self.ema_start
        if start is None:
            start = min(0.996, max(0.9, 1.0 - 20.0 / n))
        end = self.ema_end
        if end is None:
            end = 1.0 if n >= 100_000 else min(1.0, max(start, 1.0 - 5.0 / n))
        return float(start), float(end)

    def semi_weight_at(self, step: int) -> float:
        """Weight (0..1) of the unlabelled term at ``step``: off, then a linear ramp."""
        n = max(1, int(self.total_steps))
        start, ramp = self.semi_start * n, self.semi_ramp * n
        if step < start:
            return 0.0
        return 1.0 if ramp <= 0 else float(min(1.0, (step - start + 1) / ramp))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in doc.items() if k in names}
        if isinstance(kw.get("strong"), dict):
            s = dict(kw["strong"])
            if "gamma" in s:
                s["gamma"] = tuple(s["gamma"])
            kw["strong"] = StrongConfig(**s)
        if isinstance(kw.get("radiometric"), dict):
            r = dict(kw["radiometric"])
            if "offset" in r:
                r["offset"] = tuple(r["offset"])
            kw["radiometric"] = RadiometricConfig(**r)
        return cls(**kw)


# ----------------------------------------------------------------------------- losses


def bce_ignore(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits over pixels whose label is not 255 (0 if there are none).

    ``logits`` N x 1 x H x W, ``target`` N x H x W (0, 1, 255).
    """
    logits = logits[:, 0].float()
    valid = target != IGNORE
    y = torch.where(valid, target, torch.zeros_like(target)).float()
    loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (loss * valid).sum() / valid.sum().clamp_min(1)


def dice_ignore(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss of the RTS class over the whole batch, pixels labelled 255 ignored.

    ``1 - (2 sum(p y) + eps) / (sum p + sum y + eps)``; pooled over the batch (as IoU is
    pooled over a region), so a batch without thaw slumps still penalises false positives.
    """
    p = torch.sigmoid(logits[:, 0].float())
    valid = (target != IGNORE).float()
    y = (target == 1).float() * valid
    p = p * valid
    inter = (p * y).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + y.sum() + eps)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, cfg: TrainConfig):
    """The supervised loss of ``cfg.loss``: BCE, or BCE + ``dice_weight`` x soft Dice."""
    loss = bce_ignore(logits, target)
    if cfg.loss == "bce_dice":
        loss = loss + cfg.dice_weight * dice_ignore(logits, target)
    elif cfg.loss != "bce":
        raise ValueError(f"unknown loss '{cfg.loss}' (bce or bce_dice)")
    return loss


def soft_cross_entropy(
    p_teacher: torch.Tensor,
    student_logits: torch.Tensor,
    valid: torch.Tensor | None = None,
    student_temp: float = 1.0,
) -> torch.Tensor:
    """``mean over valid pixels of -sum_k p_k log softmax(s / T_s)_k`` (N x K x H x W)."""
    logp = F.log_softmax(student_logits.float() / student_temp, dim=1)
    ce = -(p_teacher.float() * logp).sum(dim=1)
    if valid is None:
        return ce.mean()
    valid = valid.to(ce.dtype)
    return (ce * valid).sum() / valid.sum().clamp_min(1)


def teacher_targets(t_logits: torch.Tensor, center: torch.Tensor, temp: float):
    """``(softmax((t - center) / temp), mean of the RAW logits over batch and space)``."""
    t = t_logits.float()
    batch_center = t.mean(dim=(0, 2, 3))
    p = F.softmax((t - center.view(1, -1, 1, 1)) / temp, dim=1)
    return p, batch_center


def ema_momentum(step: int, total: int, start: float = 0.996, end: float = 1.0) -> float:
    """Teacher EMA momentum, ``start -> end`` by a cosine over ``total`` steps."""
    t = min(max(step, 0), total) / max(1, total)
    return end - (end - start) * (math.cos(math.pi * t) + 1.0) / 2.0


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, lam: float) -> None:
    """``teacher = lam * teacher + (1 - lam) * student`` (parameters and float buffers)."""
    for pt, ps in zip(teacher.parameters(), student.parameters()):
        pt.mul_(lam).add_(ps.detach(), alpha=1.0 - lam)
    for bt, bs in zip(teacher.buffers(), student.buffers()):
        if bt.dtype.is_floating_point:
            bt.mul_(lam).add_(bs.detach(), alpha=1.0 - lam)
        else:
            bt.copy_(bs)


# ----------------------------------------------------------------------------- modules


class Discriminator(nn.Module):
    """Hung et al.'s FCN discriminator on a probability map; logits upsampled to H x W."""

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = []
        chans = [in_channels, w, 2 * w, 4 * w, 8 * w]
        for a, b in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(chans[-1], 1, 4, stride=2, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.net(p), size=p.shape[-2:], mode="bilinear", align_corners=False)


class SegmentationMethod(L.LightningModule):
    """Base: the student U-Net, AdamW + warm-up/cosine schedule, the evaluated network."""

    optimizer_steps_per_batch = 1

    def __init__(
        self, config: dict[str, Any] | TrainConfig | None = None, meta: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {})
        self.cfg = cfg
        self.save_hyperparameters({"config": cfg.to_dict(), "meta": dict(meta or {})})
        self.student = UNet(cfg.in_channels, cfg.width, cfg.n_pseudo)
        self.strong = StrongAugment(cfg.strong)
        self.radiometric = Radiometric((meta or {}).get("normalization"), cfg.radiometric)

    # the network that is evaluated and exported
    def eval_net(self) -> UNet:
        return self.student

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.eval_net().rts(x)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.student.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            cosine_warmup_lambda(
                self.cfg.total_steps, self.cfg.effective_warmup(), self.cfg.lr, self.cfg.lr_start
            ),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def augment_labelled(self, x: torch.Tensor, y: torch.Tensor):
        x, y = weak(x, y)
        x, y = self.strong(x, y)
        return self.radiometric(x), y

    def _log(self, name: str, value: torch.Tensor, prog_bar: bool = False) -> None:
        self.log(
            name,
            value.detach().float(),
            prog_bar=prog_bar,
            on_step=True,
            on_epoch=False,
            batch_size=1,
        )


class Supervised(SegmentationMethod):
    augment = False

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch["x_l"], batch["y_l"]
        if self.augment:
            x, y = self.augment_labelled(x, y)
        else:
            x = self.radiometric(x)
        loss = segmentation_loss(self.student.rts(x), y, self.cfg)
        self._log("loss", loss, prog_bar=True)
        return loss


class SupervisedAug(Supervised):
    augment = True


class FixMatchSeg(SegmentationMethod):
    def pseudo_labels(self, v1: torch.Tensor) -> torch.Tensor:
        """Hard pseudo-labels from the current model: 1 (p > hi), 0 (p < lo), else 255."""
        with torch.no_grad():
            p = torch.sigmoid(self.student.rts(v1).float())[:, 0]
        y = torch.full(p.shape, IGNORE, dtype=torch.uint8, device=p.device)
        y[p > self.cfg.fixmatch_hi] = 1
        y[p < self.cfg.fixmatch_lo] = 0
        return y

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x_l, y_l = self.augment_labelled(batch["x_l"], batch["y_l"])
        ramp = self.cfg.semi_weight_at(self.global_step)
        if ramp <= 0:  # supervised warm-up: no pseudo-labels yet
            loss = segmentation_loss(self.student.rts(x_l), y_l, self.cfg)
            self._log("loss", loss, prog_bar=True)
            return loss
        v1 = weak(batch["x_u"])
        pseudo = self.pseudo_labels(v1)
        grid = self.strong.geometry(v1.shape[0], v1.shape[-2], v1.shape[-1], v1.device)
        v2 = self.strong.photometric(self.strong.warp(v1, grid))
        pseudo_w = self.strong.warp_mask(pseudo, grid)
        out = self.student.rts(torch.cat([x_l, v2]))
        loss_l = segmentation_loss(out[: len(x_l)], y_l, self.cfg)
        loss_u = bce_ignore(out[len(x_l) :], pseudo_w)
        loss = loss_l + ramp * self.cfg.fixmatch_weight * loss_u
        self._log("loss", loss, prog_bar=True)
        self._log("loss_l", loss_l)
        self._log("loss_u", loss_u)
        return loss


class Adversarial(SegmentationMethod):
    optimizer_steps_per_batch = 2

    def __init__(self, config=None, meta=None) -> None:
        super().__init__(config, meta)
        self.automatic_optimization = False
        self.disc = Discriminator(1, self.cfg.disc_width)

    def configure_optimizers(self):
        g = super().configure_optimizers()
        d = torch.optim.Adam(self.disc.parameters(), lr=self.cfg.adv_lr, betas=(0.9, 0.99))
        return [g["optimizer"], d], [g["lr_scheduler"]]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = self.optimizers()
        sched = self.lr_schedulers()
        cfg = self.cfg
        x_l, y_l = self.augment_labelled(batch["x_l"], batch["y_l"])
        x_u = self.strong(weak(batch["x_u"]))
        n = len(x_l)
        # ---- generator (segmentation network); D frozen, but it IS in the loss
        self.disc.requires_grad_(False)
        logits = self.student.rts(torch.cat([x_l, x_u]))
        prob = torch.sigmoid(logits.float())
        loss_seg = segmentation_loss(logits[:n], y_l, cfg)
        d_out = self.disc(prob)
        ones = torch.ones_like(d_out)
        loss_adv_l = F.binary_cross_entropy_with_logits(d_out[:n].float(), ones[:n])
        loss_adv_u = F.binary_cross_entropy_with_logits(d_out[n:].float(), ones[n:])
        loss_g = (
            loss_seg + cfg.adv_weight_labelled * loss_adv_l + cfg.adv_weight_unlabelled * loss_adv_u
        )
        ramp = cfg.semi_weight_at(self.global_step // 2)
        if self.global_step // 2 >= cfg.semi_start_step and cfg.semi_weight > 0 and ramp > 0:
            with torch.no_grad():
                conf = torch.sigmoid(d_out[n:].float())[:, 0]
                hard = (prob[n:, 0] > 0.5).to(torch.uint8)
                target = torch.where(conf > cfg.semi_threshold, hard, torch.full_like(hard, IGNORE))
            loss_semi = bce_ignore(logits[n:], target)
            loss_g = loss_g + ramp * cfg.semi_weight * loss_semi
            self._log("loss_semi", loss_semi)
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        sched.step()
        self.disc.requires_grad_(True)
        # ---- discriminator: predictions are fake, labels (ignore -> prediction) are real
        p_l = prob[:n].detach()
        gt = torch.where(y_l[:, None] == IGNORE, p_l, y_l[:, None].float())
        d_fake = self.disc(prob.detach())
        d_real = self.disc(gt)
        loss_d = 0.5 * (
            F.binary_cross_entropy_with_logits(d_fake.float(), torch.zeros_like(d_fake.float()))
            + F.binary_cross_entropy_with_logits(d_real.float(), torch.ones_like(d_real.float()))
        )
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        self._log("loss", loss_g, prog_bar=True)
        self._log("loss_seg", loss_seg)
        self._log("loss_d", loss_d)
        return loss_g


class PixelDINO(SegmentationMethod):
    def __init__(self, config=None, meta=None) -> None:
        super().__init__(config, meta)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.register_buffer("center", torch.zeros(self.cfg.n_pseudo))
        self._pending_center: torch.Tensor | None = None

    def eval_net(self) -> UNet:
        """The exported network: the teacher unless training chose the student
        (``select_net``, on the validation chips)."""
        return self.student if getattr(self, "exported", "teacher") == "student" else self.teacher

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        cfg = self.cfg
        x_l, y_l = self.augment_labelled(batch["x_l"], batch["y_l"])
        ramp = cfg.semi_weight_at(self.global_step)
        if ramp <= 0:
            # supervised warm-up: the teacher (an EMA of the student) and the centre are
            # not needed yet, so neither is the unlabelled batch
            loss = segmentation_loss(self.student.rts(x_l), y_l, cfg)
            self._log("loss", loss, prog_bar=True)
            self._log("loss_sup", loss)
            return loss
        v1 = weak(batch["x_u"])
        with torch.no_grad():
            self.teacher.eval()
            t = self.teacher.pseudo_logits(v1)
            p_t, batch_center = teacher_targets(t, self.center, cfg.teacher_temp)
        v2, p_t, valid = self.strong.student_view(v1, p_t, independent_warps=cfg.independent_warps)
        v2 = self.radiometric(v2)
        rts, pseudo = self.student(torch.cat([x_l, v2]))
        n = len(x_l)
        loss_sup = segmentation_loss(rts[:n], y_l, cfg)
        loss_dino = soft_cross_entropy(p_t, pseudo[n:], valid, cfg.student_temp)
        loss = loss_sup + ramp * cfg.beta * loss_dino
        self._pending_center = batch_center.detach()
        self._log("loss", loss, prog_bar=True)
        self._log("loss_sup", loss_sup)
        self._log("loss_dino", loss_dino)
        return loss

    def configure_callbacks(self):
        return [_AfterOptimizerStep()]

    def after_optimizer_step(self) -> None:
        """After each optimizer step: the EMA teacher, then the centre."""
        lam = ema_momentum(self.global_step - 1, self.cfg.total_steps, *self.cfg.ema_schedule())
        ema_update(self.teacher, self.student, lam)
        if self._pending_center is not None:
            bc = self._pending_center
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(bc)
                bc = bc / torch.distributed.get_world_size()
            m = self.cfg.center_momentum
            self.center.mul_(m).add_(bc, alpha=1.0 - m)
            self._pending_center = None


class _AfterOptimizerStep(L.Callback):
    """Calls ``after_optimizer_step`` of the module at the end of every training batch.

    As a callback rather than the module's own ``on_train_batch_end``: Lightning runs the
    callbacks' hooks before the module's, and ``ModelCheckpoint`` last of the callbacks, so
    a checkpoint written at step k holds the teacher and centre of step k, and a run
    resumed from it continues exactly as the uninterrupted run.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.after_optimizer_step()


_CLASSES = {
    "supervised": Supervised,
    "supervised_aug": SupervisedAug,
    "fixmatchseg": FixMatchSeg,
    "adversarial": Adversarial,
    "pixeldino": PixelDINO,
}


def make_method(config: TrainConfig, meta: dict[str, Any] | None = None) -> SegmentationMethod:
    if config.method not in _CLASSES:
        raise ValueError(f"unknown method '{config.method}'; one of {', '.join(METHODS)}")
    return _CLASSES[config.method](config, meta)


def load_checkpoint(path: str) -> SegmentationMethod:
    """Rebuild the method from a Lightning checkpoint (config and meta are in it)."""
    from .checkpoint import load_checkpoint_file

    ckpt = load_checkpoint_file(path)  # weights only: never runs code from the file
    hp = ckpt.get("hyper_parameters", {})
    cfg = TrainConfig.from_dict(hp.get("config", {}))
    module = make_method(cfg, hp.get("meta", {}))
    module.load_state_dict(ckpt["state_dict"])
    return module
