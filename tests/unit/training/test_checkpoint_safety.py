"""A crafted checkpoint must never run code (issue 16, item 2).

The crafted file's ``__reduce__`` writes a marker file when unpickled. First we show that an
unrestricted ``torch.load`` really runs it (so the test can fail), then that every place that
reads checkpoints refuses the file and the marker is never written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def _crafted(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER_code_ran"
    path = tmp_path / "colleague.ckpt"
    torch.save(
        {
            "state_dict": {"student.w": torch.zeros(2)},
            "global_step": 5,
            "hyper_parameters": {"config": {}, "meta": {}},
            "callbacks": {"x": _Payload(marker)},
        },
        path,
    )
    return path, marker


def test_the_crafted_file_really_runs_code_when_unpickled(tmp_path):
    path, marker = _crafted(tmp_path)
    torch.load(path, map_location="cpu", weights_only=False)
    assert marker.read_text() == "code ran"


def test_load_checkpoint_file_refuses_without_running(tmp_path):
    from arctic_assist.training.checkpoint import CheckpointError, load_checkpoint_file

    path, marker = _crafted(tmp_path)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint_file(path)
    assert "colleague.ckpt" in str(info.value) and "exec" in str(info.value)
    assert not marker.exists()


def test_methods_load_checkpoint_refuses(tmp_path):
    from arctic_assist.training.checkpoint import CheckpointError
    from arctic_assist.training.methods import load_checkpoint

    path, marker = _crafted(tmp_path)
    with pytest.raises(CheckpointError):
        load_checkpoint(str(path))
    assert not marker.exists()


def test_warm_start_refuses(tmp_path):
    from arctic_assist.training.checkpoint import CheckpointError
    from arctic_assist.training.methods import TrainConfig, make_method
    from arctic_assist.training.train import warm_start

    path, marker = _crafted(tmp_path)
    module = make_method(TrainConfig(method="supervised", width=4, tile=32))
    with pytest.raises(CheckpointError):
        warm_start(module, str(path))
    assert not marker.exists()


def test_export_command_refuses(tmp_path):
    from arctic_assist.training.checkpoint import CheckpointError
    from arctic_assist.training.evaluate import export_main

    path, marker = _crafted(tmp_path)
    with pytest.raises(CheckpointError):
        export_main(["--checkpoint", str(path), "--out", str(tmp_path / "x.onnx")])
    assert not marker.exists()
    assert not (tmp_path / "x.onnx").exists()


def test_resume_refuses_before_lightning_reads_it(tmp_path):
    from arctic_assist.training.checkpoint import CheckpointError
    from arctic_assist.training.common import resume_checkpoint

    path, marker = _crafted(tmp_path)
    with pytest.raises(CheckpointError):
        resume_checkpoint(argparse.Namespace(resume=str(path), log_dir=str(tmp_path)))
    assert not marker.exists()


def test_training_cli_with_crafted_base_model_reports_one_error(tiny_dataset, tmp_path, capsys):
    from arctic_assist.training.train import main

    path, marker = _crafted(tmp_path)
    rc = main(
        [
            "--data",
            str(tiny_dataset.root),
            "--out",
            str(tmp_path / "m.onnx"),
            "--width",
            "4",
            "--tile",
            "32",
            "--steps",
            "2",
            "--progress",
            "json",
            "--log-dir",
            str(tmp_path / "runs"),
            "--accelerator",
            "cpu",
            "--base-model",
            str(path),
        ],
        method="supervised",
    )
    assert rc == 1
    events = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    errors = [e for e in events if e["event"] == "error"]
    assert errors and "refused" in errors[-1]["message"], events
    assert not marker.exists()
    assert not (tmp_path / "m.onnx").exists()


def test_a_real_checkpoint_still_loads(tiny_dataset, tmp_path):
    """Weights-only reading must not break what our own training writes."""
    from arctic_assist.training.checkpoint import load_checkpoint_file
    from arctic_assist.training.methods import load_checkpoint
    from arctic_assist.training.train import main

    rc = main(
        [
            "--data",
            str(tiny_dataset.root),
            "--out",
            str(tmp_path / "m.onnx"),
            "--width",
            "4",
            "--tile",
            "32",
            "--steps",
            "2",
            "--progress",
            "none",
            "--batch-labelled",
            "2",
            "--batch-unlabelled",
            "2",
            "--log-dir",
            str(tmp_path / "runs"),
            "--accelerator",
            "cpu",
            "--checkpoint-every",
            "2",
            "--threads",
            "1",
        ],
        method="pixeldino",
    )
    assert rc == 0
    ckpt = tmp_path / "runs" / "pixeldino" / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(ckpt)["global_step"] == 2
    module = load_checkpoint(str(ckpt))
    assert module.cfg.method == "pixeldino"
