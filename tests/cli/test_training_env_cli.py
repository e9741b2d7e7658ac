"""From a plain QGIS install to a retrained model (issue 14, section 1).

The packaged zip is installed into a fresh profile; ``arctic_assist:setup_training_environment``
makes the training venv there (from this machine's pip configuration: the local torch wheel
and package mirror, no PyTorch index); then ``retrain_model`` *without PYTHON* trains in it
and registers the model. The venv has no GDAL and no QGIS: the training data reaches it
packed.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from support import REPO, make_profile, qgis_env, run_qgis_process, small_training_data

pytestmark = pytest.mark.needs_torch  # the environment installs torch and trains


@pytest.fixture(scope="module")
def zip_profile(tmp_path_factory):
    """A fresh profile with the packaged plugin unzipped into it, and its environment."""
    root = tmp_path_factory.mktemp("zip_profile")
    dist = root / "dist"
    subprocess.run([sys.executable, str(REPO / "tools" / "package.py"), str(dist)], check=True)
    (zip_path,) = dist.glob("arctic_assist-*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        assert "arctic_assist/training/requirements.txt" in zf.namelist()
        config = make_profile(root / "config")
        plugins = config / "profiles" / "default" / "python" / "plugins"
        plugins.mkdir(parents=True)
        zf.extractall(plugins)
    env = qgis_env(config, root / "no_plugin_path")
    env.pop("QGIS_PLUGINPATH")
    env["PATH"] = "/usr/bin:/bin"  # no python3 with torch on PATH
    return config / "profiles" / "default", env


def test_setup_environment_then_retrain_without_python(zip_profile, tmp_path):
    profile, env = zip_profile
    proc = run_qgis_process(
        ["run", "arctic_assist:setup_training_environment", "--", "TORCH_INDEX=none"],
        env,
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    envs = list((profile / "arctic_assist" / "training_env").iterdir())
    assert len(envs) == 1 and (envs[0] / "arctic_assist_env.json").is_file(), envs
    python = envs[0] / "bin" / "python"
    assert f"PYTHON:\t{python}" in proc.stdout, proc.stdout[-2000:]
    assert "TORCH:\t2." in proc.stdout and "DEVICE:\tCPU only" in proc.stdout
    # its own packages only: no GDAL, no QGIS (the data reaches it packed)
    probe = subprocess.run(
        [str(python), "-c", "import torch, lightning; from osgeo import gdal"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert probe.returncode != 0 and "osgeo" in probe.stderr, probe.stderr

    data = small_training_data(tmp_path)
    out = tmp_path / "new.onnx"
    proc = run_qgis_process(
        [
            "run",
            "arctic_assist:retrain_model",
            "--",
            f"DATA={data.root}",
            "STEPS=2",
            "DEVICE=1",
            f"OUTPUT={out}",
        ],
        env,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert f"Running: {python} -m arctic_assist.training supervised --data " in log
    assert "data.npz" in log and out.is_file()
    registered = list((profile / "arctic_assist" / "models").glob("*.onnx"))
    assert len(registered) == 1, registered
    from arctic_assist.io.models import read_spec

    spec = read_spec(str(out))
    assert spec.provenance["training_data"] == str(data.root)  # the folder, not the .npz
    assert not (tmp_path / "new_run").exists()  # finished: the run folder is gone
