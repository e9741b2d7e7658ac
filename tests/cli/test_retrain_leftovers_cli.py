"""retrain_model through qgis_process: what a finished, failed, killed or resumed run leaves
on disk, the model's own name in its metadata, and the training process never outliving
qgis_process (issue 16)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import QGIS_PROCESS, run_qgis_process, small_training_data

ALG = "arctic_assist:retrain_model"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_training_data(tmp_path_factory.mktemp("retrain_data")).root


def args(data, out, steps, *extra):
    return [
        "run",
        ALG,
        "--",
        f"DATA={data}",
        f"STEPS={steps}",
        "DEVICE=1",
        f"OUTPUT={out}",
        f"PYTHON={sys.executable}",
        *extra,
    ]


@pytest.mark.needs_torch
def test_finished_run_leaves_only_the_model_named_after_itself(cli_env, data, tmp_path):
    from arctic_assist.core.onnx_model import read_model_spec

    out = tmp_path / "glacier_v2.onnx"
    proc = run_qgis_process(args(data, out, 2), cli_env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["glacier_v2.onnx"]
    spec = read_model_spec(str(out))
    assert spec.name == "glacier_v2" and ".part" not in spec.name
    metrics = spec.provenance.get("metrics")
    assert metrics and "val" in metrics, metrics


def test_failed_run_leaves_nothing(cli_env, tmp_path):
    bad = tmp_path / "bad_data"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"format": "something else"}')
    out = tmp_path / "m.onnx"
    proc = run_qgis_process(args(bad, out, 2), cli_env)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text, text
    # refused while packing the data for the training environment, before any training
    assert "DATA: " in text and "manifest.json: field 'format'" in text, text
    assert "nothing was kept" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_data"]


def test_run_folder_that_is_not_ours_is_refused(cli_env, data, tmp_path):
    out = tmp_path / "m.onnx"
    (tmp_path / "m_run").mkdir()
    (tmp_path / "m_run" / "my_notes.txt").write_text("mine")
    proc = run_qgis_process(args(data, out, 2), cli_env)
    assert proc.returncode != 0 and "not made by Retrain model" in proc.stdout + proc.stderr
    assert (tmp_path / "m_run" / "my_notes.txt").read_text() == "mine"


@pytest.mark.needs_torch
def test_rerun_resumes_from_the_checkpoint(cli_env, data, tmp_path):
    """A checkpoint of the same data and method in <OUTPUT>_run: the rerun continues from
    it (the training's start event reports its step), and the folder is removed at the end."""
    out = tmp_path / "m.onnx"
    work = tmp_path / "m_run"
    work.mkdir()
    (work / "run.json").write_text(
        json.dumps(
            {
                "data": str(Path(data).resolve()),
                "task": "segmentation",
                "method": "pixeldino",
                "base_model": None,
            }
        )
    )
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "arctic_assist.training",
            "pixeldino",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "scratch" / "x.onnx"),
            "--steps",
            "3",
            "--checkpoint-every",
            "3",
            "--log-dir",
            str(work),
            "--progress",
            "none",
            "--accelerator",
            "cpu",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert list(work.glob("*/checkpoints/*.ckpt"))
    # pixeldino from scratch, as run.json says
    proc = run_qgis_process(args(data, out, 5, "METHOD=0", "START=2"), cli_env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "Continuing the earlier run" in log
    assert '"event": "start", "step": 3' in log, log[-3000:]
    assert out.is_file() and not work.exists()


def _training_pids(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "arctic_assist.training" in cmd and marker in cmd:
            pids.append(int(d.name))
    return pids


@pytest.mark.needs_torch
def test_killed_qgis_process_takes_the_training_with_it(cli_env, data, tmp_path):
    out = tmp_path / "killed.onnx"
    proc = subprocess.Popen(
        [QGIS_PROCESS, *args(data, out, 100000)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not _training_pids(str(tmp_path)):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while _training_pids(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _training_pids(str(tmp_path)) == []  # the training died with qgis_process
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed_run"]
    left = {
        p.relative_to(tmp_path / "killed_run").as_posix()
        for p in (tmp_path / "killed_run").rglob("*")
        if p.is_file()
    }
    assert "run.json" in left and not [p for p in left if p.endswith(".onnx")], left
    # no checkpoint yet: the next run starts afresh, finishes and leaves only the model
    proc2 = run_qgis_process(args(data, out, 2), cli_env)
    assert proc2.returncode == 0, (proc2.stdout + proc2.stderr)[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.onnx"]
    assert os.path.getsize(out) > 0
