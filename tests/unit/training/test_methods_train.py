"""Each method trains (loss goes down), resume continues from a checkpoint, JSON progress."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from arctic_assist.training.common import add_trainer_args, build_trainer  # noqa: E402
from arctic_assist.training.data import TileSampler  # noqa: E402
from arctic_assist.training.methods import METHODS, TrainConfig, bce_ignore, make_method  # noqa: E402

torch.set_num_threads(1)


class _Repeat(torch.utils.data.Dataset):
    def __init__(self, batch, n):
        self.batch, self.n = batch, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.batch


def _args(tmp_path, steps, **kw):
    p = argparse.ArgumentParser()
    add_trainer_args(p)
    argv = [
        "--steps",
        str(steps),
        "--progress",
        "none",
        "--log-dir",
        str(tmp_path),
        "--accelerator",
        "cpu",
        "--checkpoint-every",
        "0",
    ]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


@pytest.mark.parametrize("method", METHODS)
def test_a_few_steps_lower_the_loss(method, tiny_dataset, tmp_path):
    torch.manual_seed(0)
    sampler = TileSampler(tiny_dataset, 32, 4, 4, seed=0)
    batch = {k: torch.from_numpy(v) for k, v in sampler.batch().items()}
    cfg = TrainConfig(
        method=method,
        width=4,
        tile=32,
        total_steps=25,
        lr=1e-2,
        batch_labelled=4,
        batch_unlabelled=4,
        disc_width=4,
    )
    module = make_method(cfg)

    def sup_loss():
        with torch.no_grad():
            return float(bce_ignore(module.student.rts(batch["x_l"]), batch["y_l"]))

    before = sup_loss()
    args = _args(tmp_path, 25)
    args.method = method
    trainer = build_trainer(args, steps_per_batch=module.optimizer_steps_per_batch)
    loader = torch.utils.data.DataLoader(_Repeat(batch, 25), batch_size=None)
    trainer.fit(module, train_dataloaders=loader)
    after = sup_loss()
    assert trainer.global_step == 25 * module.optimizer_steps_per_batch
    assert after < before * 0.9, (before, after)


def test_cli_resume_continues_from_checkpoint(tiny_dataset, tmp_path, capsys):
    from arctic_assist.training.train import main

    common = [
        "--data",
        str(tiny_dataset.root),
        "--out",
        str(tmp_path / "m.onnx"),
        "--width",
        "4",
        "--tile",
        "32",
        "--batch-labelled",
        "2",
        "--batch-unlabelled",
        "2",
        "--progress",
        "json",
        "--log-dir",
        str(tmp_path / "runs"),
        "--checkpoint-every",
        "2",
        "--accelerator",
        "cpu",
        "--threads",
        "1",
    ]
    assert main(common + ["--steps", "4"], method="pixeldino") == 0
    first = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert first[0] == {"event": "start", "step": 0, "total": 4}
    assert first[-1]["event"] == "done"
    ckpt = torch.load(
        tmp_path / "runs" / "pixeldino" / "checkpoints" / "last.ckpt", weights_only=False
    )
    assert ckpt["global_step"] == 4
    assert main(common + ["--steps", "6", "--resume", "last"], method="pixeldino") == 0
    second = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert second[0]["event"] == "start" and second[0]["step"] == 4
    steps = [e["step"] for e in second if e["event"] == "progress"]
    assert steps and min(steps) > 4 and max(steps) == 6
    ckpt2 = torch.load(
        tmp_path / "runs" / "pixeldino" / "checkpoints" / "last.ckpt", weights_only=False
    )
    assert ckpt2["global_step"] == 6
    # the teacher and centre continued, they were not re-initialised
    assert not torch.equal(
        ckpt2["state_dict"]["center"], torch.zeros_like(ckpt2["state_dict"]["center"])
    )


def test_json_error_line(tmp_path, capsys):
    from arctic_assist.training.train import main

    rc = main(
        [
            "--data",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "m.onnx"),
            "--progress",
            "json",
        ],
        method="supervised",
    )
    assert rc == 1
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["event"] == "error" and "missing" in line["message"]


def test_tile_is_capped_at_the_chip_size(tiny_dataset, tmp_path):
    """Exported training data has small chips (e.g. 64 px); the paper's 192 px tile would be
    mostly padding, so training uses the largest chip size instead."""
    from arctic_assist.training.export import read_spec
    from arctic_assist.training.train import build_parser, largest_chip, train

    assert largest_chip(tiny_dataset, "train") == 32
    a = build_parser("supervised").parse_args(
        [
            "--data",
            str(tiny_dataset.root),
            "--out",
            str(tmp_path / "m.onnx"),
            "--width",
            "4",
            "--tile",
            "192",
            "--batch-labelled",
            "2",
            "--steps",
            "1",
            "--progress",
            "none",
            "--log-dir",
            str(tmp_path / "runs"),
            "--checkpoint-every",
            "0",
            "--accelerator",
            "cpu",
        ]
    )
    res = train("supervised", a)
    spec = read_spec(res["output"])
    assert spec.provenance["train_tile"] == 32
    # the training scenes' raw band medians travel with the model (scene adaptation)
    from osgeo import gdal

    sources = [u.image for u in tiny_dataset.unlabelled] or [
        c.image for c in tiny_dataset.select("train")
    ]
    raw = np.concatenate(
        [gdal.Open(str(p)).ReadAsArray().reshape(4, -1) for p in sources], axis=1
    ).astype(np.float64)
    expected = np.median(raw[:, (raw != 0).any(axis=0)], axis=1)
    assert spec.input_medians is not None
    assert np.allclose(spec.input_medians, expected)  # read from the raw rasters: exact


def test_input_statistics_standardise_the_network_input(tiny_dataset):
    """A network trained from scratch sees its input per band at zero mean and unit spread
    (statistics of the training chips, kept in the network and so in the ONNX model)."""
    import numpy as np

    from arctic_assist.training.train import input_statistics
    from arctic_assist.training.unet import UNet

    mean, std = input_statistics(tiny_dataset, "train")
    vals = []
    for c in tiny_dataset.select("train"):
        img, mask = tiny_dataset.read_chip(c)
        vals.append(img[:, mask != 255])
    vals = np.concatenate(vals, axis=1)
    assert np.allclose(mean, vals.mean(axis=1), atol=1e-5)
    assert np.allclose(std, vals.std(axis=1), atol=1e-5)
    net = UNet(4, 4, 3)
    net.set_input_stats(mean, std)
    seen = []
    net.enc[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    net.rts(torch.from_numpy(vals[:, :256].reshape(1, 4, 16, 16).copy()))
    x = seen[0]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(4), atol=0.3)


def test_select_network_takes_the_better_one_and_its_threshold(rts_dataset):
    """PixelDINO exports whichever of teacher and student scores better on the selection
    chips, at the threshold that scores best there; the metadata says which."""
    from arctic_assist.training.train import select_network

    torch.manual_seed(0)
    cfg = TrainConfig(method="pixeldino", width=4, tile=32, total_steps=10)
    module = make_method(cfg)
    # a teacher that never says "thaw slump" (IoU 0) and a student that always does
    # (IoU = the share of RTS pixels > 0): the student must win, at the tie-break 0.5
    module.teacher.rts = lambda x: torch.full_like(x[:, :1], -100.0)
    module.student.rts = lambda x: torch.full_like(x[:, :1], 100.0)
    sel = select_network(module, rts_dataset)
    assert sel["split"] == "train"  # the tiny folder has no 'val' chips
    assert set(sel["iou_by_threshold"]) == {"teacher", "student"}
    assert max(sel["iou_by_threshold"]["teacher"].values()) == 0.0
    assert sel["network"] == "student" and sel["iou"] > 0
    assert module.eval_net() is module.student
    assert sel["threshold"] == 0.5
    assert select_network(module, rts_dataset, "teacher")["network"] == "teacher"
    assert module.eval_net() is module.teacher
    assert 0.1 <= sel["threshold"] <= 0.9


def test_warm_start_from_checkpoint_keeps_pseudo_head_and_centre(tmp_path):
    """A warm start from a PixelDINO checkpoint keeps the whole network (pseudo-class head
    included), the input statistics and the centre; a checkpoint written before the network
    standardised its input loads with the identity statistics it was trained with."""
    from arctic_assist.training.train import warm_start

    torch.manual_seed(0)
    cfg = TrainConfig(method="pixeldino", width=4, n_pseudo=5, tile=32, total_steps=10)
    base = make_method(cfg)
    base.student.set_input_stats([0.1, 0.2, 0.3, 0.4], [0.05, 0.04, 0.03, 0.02])
    base.teacher.load_state_dict(base.student.state_dict())
    base.center.copy_(torch.randn(5))
    path = tmp_path / "base.ckpt"
    torch.save({"state_dict": base.state_dict()}, path)
    new = make_method(cfg)
    warm_start(new, str(path))
    for net in (new.student, new.teacher):
        assert torch.equal(net.pseudo_head.weight, base.teacher.pseudo_head.weight)
        assert torch.equal(net.in_std, base.teacher.in_std)
    assert torch.equal(new.center, base.center)
    old = {k: v for k, v in base.state_dict().items() if not k.endswith(("in_mean", "in_std"))}
    torch.save({"state_dict": old}, path)
    again = make_method(cfg)
    again.student.set_input_stats([1.0] * 4, [2.0] * 4)  # must be reset, not kept
    warm_start(again, str(path))
    assert torch.equal(again.student.in_mean, torch.zeros(4))
    assert torch.equal(again.teacher.in_std, torch.ones(4))


def test_pixeldino_checkpoint_holds_the_teacher_of_its_step(tiny_dataset, tmp_path):
    """The EMA teacher and the centre are updated before the checkpoint of a step is
    written (a callback, run before ModelCheckpoint): the last checkpoint holds exactly the
    teacher and centre the run ended with, so a resumed run starts from them."""
    from arctic_assist.training.train import build_parser, train

    args = [
        "--data", str(tiny_dataset.root), "--out", str(tmp_path / "m.onnx"),
        "--width", "4", "--tile", "32", "--batch-labelled", "2", "--batch-unlabelled", "2",
        "--progress", "none", "--log-dir", str(tmp_path / "runs"), "--checkpoint-every",
        "2", "--accelerator", "cpu", "--threads", "1", "--steps", "4", "--semi-start",
        "0", "--semi-ramp", "0",
    ]  # fmt: skip
    module = train("pixeldino", build_parser("pixeldino").parse_args(args))["module"]
    path = tmp_path / "runs" / "pixeldino" / "checkpoints" / "last.ckpt"
    state = torch.load(path, weights_only=False)["state_dict"]
    assert state["center"].abs().sum() > 0  # the unlabelled term ran
    assert torch.equal(state["center"], module.center)
    for k, v in module.teacher.state_dict().items():
        assert torch.equal(state["teacher." + k], v), k


def test_warm_start_brings_the_scenes_to_the_base_models_medians(tiny_dataset, tmp_path):
    """A warm start from a model that carries band medians scales the training scenes to
    them (as detection scaled the scene for that model) and keeps them in the new model;
    --no-adapt-base trains on the scenes' own levels."""
    import json

    import onnx

    from arctic_assist.core.spec import METADATA_KEY
    from arctic_assist.training.export import read_spec
    from arctic_assist.training.train import build_parser, scene_medians, train

    def run(out, *extra: str, steps: int = 1) -> dict:
        args = [
            "--data", str(tiny_dataset.root), "--out", str(out), "--width", "4", "--tile",
            "32", "--batch-labelled", "2", "--steps", str(steps), "--progress", "none",
            "--log-dir", str(tmp_path / out.stem), "--checkpoint-every", "0",
            "--accelerator", "cpu", *extra,
        ]  # fmt: skip
        return train("supervised", build_parser("supervised").parse_args(args))

    run(tmp_path / "base.onnx", steps=5)  # (after 1 step equal weights export as one)
    own = scene_medians(tiny_dataset)
    model = onnx.load(str(tmp_path / "base.onnx"))  # the base model saw a brighter scene
    doc = json.loads(model.metadata_props[0].value)
    doc["input"]["statistics"]["median"] = [m * 1.25 for m in own]
    model.metadata_props[0].value = json.dumps(doc)
    assert model.metadata_props[0].key == METADATA_KEY
    onnx.save(model, str(tmp_path / "bright.onnx"))

    res = run(tmp_path / "warm.onnx", "--base-model", str(tmp_path / "bright.onnx"))
    spec = read_spec(res["output"])
    assert np.allclose(spec.input_medians, [m * 1.25 for m in own])
    assert np.allclose(spec.provenance["recipe"]["scene_gain"], 1.25, rtol=0.01)
    # the chips the run trained on were scaled: their normalised values went up
    chip = tiny_dataset.select("train")[0]
    plain = type(tiny_dataset)(**{**tiny_dataset.__dict__, "gain": None}).read_chip(chip)[0]
    scaled = type(tiny_dataset)(**{**tiny_dataset.__dict__, "gain": (1.25,) * 4}).read_chip(chip)[0]
    assert scaled.mean() > plain.mean()

    res = run(
        tmp_path / "own.onnx", "--base-model", str(tmp_path / "bright.onnx"), "--no-adapt-base"
    )
    spec = read_spec(res["output"])
    assert np.allclose(spec.input_medians, own)
    assert spec.provenance["recipe"]["scene_gain"] is None

    # a base model of another kind of land (x 10): beyond light, trained at its own levels
    doc["input"]["statistics"]["median"] = [m * 10 for m in own]
    model.metadata_props[0].value = json.dumps(doc)
    onnx.save(model, str(tmp_path / "far.onnx"))
    spec = read_spec(
        run(tmp_path / "far_w.onnx", "--base-model", str(tmp_path / "far.onnx"))["output"]
    )
    assert np.allclose(spec.input_medians, own)
    assert spec.provenance["recipe"]["scene_gain"] is None
