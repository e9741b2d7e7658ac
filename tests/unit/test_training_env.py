"""The training environment (issue 14): which interpreter, how torch's build is chosen, and
that a failed or canceled install leaves the previous environment in place. The real
install (venv + pip, from this machine's wheels) is tested end to end in
tests/cli/test_training_env_cli.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from arctic_assist.core.errors import ArcticAssistError, CanceledError, InputError
from arctic_assist.io import training_env as TE


def fake_env(root: Path, name: str, *, complete: bool = True) -> Path:
    """An environment folder as create() leaves it; its python is this interpreter."""
    env = root / name
    py = TE.venv_python(env)
    py.parent.mkdir(parents=True)
    py.symlink_to(sys.executable)
    if complete:
        (env / TE.MARKER).write_text(json.dumps({"format": "arctic_assist.training_env"}))
    return env


def test_requirements_pin_every_training_import():
    text = TE.REQUIREMENTS.read_text(encoding="utf-8")
    for module in TE.TRAINING_MODULES:
        assert f"\n{module}==" in text, module
    assert "gdal" not in text.lower().replace("no gdal", "")  # the point: no GDAL needed
    assert TE.torch_requirement().startswith("torch==2.")


def test_torch_build_chooses_the_index():
    torch = TE.torch_requirement()
    linux_cpu = TE.pip_arguments("cpu", None, "linux")
    assert linux_cpu == [torch + "+cpu", "--extra-index-url", TE.CPU_INDEX]
    assert TE.pip_arguments("cpu", None, "win32")[0] == torch + "+cpu"
    assert TE.pip_arguments("cpu", None, "darwin") == []  # PyPI's macOS wheels: one build
    assert TE.pip_arguments("cuda", None, "linux") == []  # PyPI's Linux wheels are CUDA
    assert TE.pip_arguments("cuda", None, "win32") == [
        "--extra-index-url",
        TE.CUDA_INDEX_WINDOWS,
    ]
    # offline: pip's own configuration only; or a mirror
    assert TE.pip_arguments("cpu", "none", "linux") == [torch + "+cpu"]
    assert TE.pip_arguments("cuda", "https://mirror.example/torch", "linux") == [
        "--extra-index-url",
        "https://mirror.example/torch",
    ]
    with pytest.raises(InputError, match="TORCH_BUILD"):
        TE.pip_arguments("rocm", None, "linux")


def test_current_env_is_the_newest_complete_one(tmp_path):
    root = tmp_path / "training_env"
    assert TE.current_env(root) is None
    old = fake_env(root, "env-20260101T000000-11")
    new = fake_env(root, "env-20261130T120000-12")
    fake_env(root, "env-20261201T000000-13", complete=False)  # still installing
    (root / "my-own-venv").mkdir()  # not ours: never chosen
    assert TE.current_env(root) == new
    assert TE.current_python(root) == str(TE.venv_python(new))
    assert old.is_dir()


def test_clean_env_keeps_qgis_python_paths_out(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/usr/share/qgis/python")
    monkeypatch.setenv("PYTHONHOME", "/opt/qgis")
    env = TE.clean_env({"PYTHONPATH": "/plugin"})
    assert env["PYTHONPATH"] == "/plugin" and "PYTHONHOME" not in env
    assert env["PYTHONNOUSERSITE"] == "1" and env["PATH"] == os.environ["PATH"]


def test_probe_names_what_works_and_what_does_not(tmp_path):
    good = TE.probe(sys.executable)  # the project's venv has the training packages
    assert good["ok"] and good["torch"].startswith("2.") and isinstance(good["cuda"], bool)
    line = TE.describe(good)
    assert f"torch {good['torch']}" in line and ("CPU only" in line or "CUDA GPU" in line)
    missing = TE.probe(str(tmp_path / "nope" / "python"))
    assert not missing["ok"] and "not an executable file" in missing["error"]
    broken = TE.probe("/bin/false")
    assert not broken["ok"] and "not a working Python" in broken["error"]
    assert TE.describe(broken).startswith("not usable:")


def test_failed_install_leaves_the_previous_environment(tmp_path):
    root = tmp_path / "training_env"
    previous = fake_env(root, "env-20260101T000000-11")
    killed = fake_env(root, "env-20260102T000000-999999", complete=False)  # pid gone
    lines: list[str] = []
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    with pytest.raises(ArcticAssistError, match="failed"):
        TE.create(
            root,
            "cpu",
            torch_index="none",
            pip_options=["--no-index", "--find-links", str(empty)],  # nothing to install
            python=sys.executable,
            say=lines.append,
        )
    assert sorted(p.name for p in root.iterdir()) == [previous.name]  # new one removed
    assert not killed.exists() and any("interrupted install" in line for line in lines)
    assert TE.current_env(root) == previous


def test_cancel_removes_the_new_environment(tmp_path):
    root = tmp_path / "training_env"
    previous = fake_env(root, "env-20260101T000000-11")
    seen: list[str] = []
    with pytest.raises(CanceledError):
        TE.create(
            root,
            "cpu",
            torch_index="none",
            python=sys.executable,
            say=seen.append,
            canceled=lambda: any(line.startswith("Installing the training") for line in seen),
        )
    assert [p.name for p in root.iterdir()] == [previous.name]


def test_no_usable_base_python_is_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setattr(TE.sys, "executable", str(tmp_path / "qgis"))
    monkeypatch.setattr(TE.sys, "base_exec_prefix", str(tmp_path))
    monkeypatch.setattr(TE.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="python3-venv"):
        TE.base_python()
