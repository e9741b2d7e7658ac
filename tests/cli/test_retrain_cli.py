"""retrain_model through qgis_process: bad input gives one message and a non-zero exit."""

import pytest
from support import run_qgis_process, small_training_data


def test_data_folder_without_manifest(cli_env, tmp_path):
    out = tmp_path / "new.onnx"
    proc = run_qgis_process(
        [
            "run",
            "arctic_assist:retrain_model",
            "--",
            f"DATA={tmp_path}",
            f"OUTPUT={out}",
            "STEPS=1",
        ],
        cli_env,
    )
    assert proc.returncode != 0
    assert "no manifest.json" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists()


def test_python_without_torch_is_named(cli_env, tmp_path):
    """Valid data, an interpreter that cannot train: one message naming it and the way
    out, after the data was checked; nothing left behind."""
    data = small_training_data(tmp_path)
    out = tmp_path / "out" / "new.onnx"
    proc = run_qgis_process(
        [
            "run",
            "arctic_assist:retrain_model",
            "--",
            f"DATA={data.root}",
            f"OUTPUT={out}",
            "PYTHON=/bin/false",
        ],
        cli_env,
    )
    assert proc.returncode != 0
    assert "'/bin/false' cannot run the training" in proc.stdout + proc.stderr
    assert "Create the training environment" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def retrain(env, data, out, *extra):
    """retrain_model on the CPU through qgis_process (``extra``: more KEY=VALUE)."""
    args = ["run", "arctic_assist:retrain_model", "--", f"DATA={data}", "DEVICE=1"]
    return run_qgis_process([*args, *extra, f"OUTPUT={out}"], env, timeout=600)


@pytest.mark.needs_torch
def test_retrain_finds_the_project_venv_by_default(cli_env, tmp_path):
    """No PYTHON given: qgis_process runs Debian's python, and the plugin folder is made of
    links into the checkout (as `make install-plugin` lays it out); the training must still
    run in the checkout's .venv (not python3 from PATH) and register a usable model."""
    data = small_training_data(tmp_path)
    out = tmp_path / "new.onnx"
    env = dict(cli_env, PATH="/usr/bin:/bin")  # a PATH whose python3 has no torch
    proc = retrain(env, data.root, out, "STEPS=2")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert ".venv/bin/python -m arctic_assist.training supervised" in log  # the default
    assert out.is_file() and not (tmp_path / "new.onnx.part.onnx").exists()
    # START's default (auto) for thaw slumps: from scratch
    assert "--base-model" not in log and "START: starting" not in log


@pytest.mark.needs_torch
def test_retrain_from_the_default_model_when_asked(cli_env, tmp_path):
    """START = the task's default model: the bundled one here (its bands fit the data)."""
    data = small_training_data(tmp_path)
    out = tmp_path / "new.onnx"
    proc = retrain(cli_env, data.root, out, "START=1", "STEPS=1")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "START: starting from the default model" in log
    assert "--base-model " in log and "rts_pixeldino_s2_bgrn.onnx" in log
    assert out.is_file()


def test_task_that_does_not_match_the_data_is_named(cli_env, tmp_path):
    """Thaw-slump data with TASK = calving fronts: one message naming the TASK to choose,
    before any interpreter is probed; nothing left behind."""
    data = small_training_data(tmp_path)
    out = tmp_path / "out" / "new.onnx"
    proc = run_qgis_process(
        [
            "run",
            "arctic_assist:retrain_model",
            "--",
            f"DATA={data.root}",
            "TASK=1",
            f"OUTPUT={out}",
            "PYTHON=/bin/false",
        ],
        cli_env,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text
    assert "TASK: DATA holds thaw-slump masks; choose TASK 'Thaw slumps" in text, text
    assert "/bin/false" not in text.split("Inputs")[-1].split("PYTHON:")[-1].split("\n", 1)[-1]
    assert not any((tmp_path / "out").iterdir())
