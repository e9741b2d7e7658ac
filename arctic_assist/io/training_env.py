"""The training environment: a Python venv of its own in which retraining runs (issue 14).

QGIS-free. ``retrain_model`` runs ``python -m arctic_assist.training`` in a separate
interpreter that has torch; an expert who installed the plugin from a zip has none. This
module makes one in the QGIS profile folder and says whether an interpreter works:

- :func:`create`: ``<base python> -m venv`` in a new folder under
  ``<profile>/arctic_assist/training_env/``, ``pip install`` of the pinned
  ``arctic_assist/training/requirements.txt`` (torch's CPU or CUDA build, chosen by the
  package index), a probe that imports everything the training needs, then a marker file.
  Only then is the new environment the current one and the previous one (a folder of ours,
  with our marker) removed; a failed or canceled install removes its own folder and leaves
  the previous environment in place. No GDAL and no QGIS in it: ``retrain_model`` hands
  the training data over packed (:mod:`arctic_assist.training.packed`).
- :func:`current_env` / :func:`current_python`: the newest complete environment.
- :func:`probe`: torch, Lightning, ONNX versions and the GPU (or CPU only) of an
  interpreter, by running it (never by reading anything it wrote).

Child processes get :func:`clean_env`: QGIS's own ``PYTHONPATH``/``PYTHONHOME`` never leak
into the venv (they would mix QGIS's numpy into torch's, or make pip think a package is
installed when QGIS's is on the path).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.errors import ArcticAssistError, CanceledError, InputError

#: the pinned training requirements, shipped inside the plugin
REQUIREMENTS = Path(__file__).resolve().parents[1] / "training" / "requirements.txt"
#: the file written into an environment once it works; its presence makes it ours
MARKER = "arctic_assist_env.json"
#: an environment's folder: env-<creation time>-<pid of the process that made it>
_ENV_NAME = re.compile(r"^env-\d{8}T\d{6}-(\d+)$")
BUILDS = ("cpu", "cuda")
#: PyTorch's own index of CPU-only wheels (PyPI's Linux and Windows wheels are CUDA builds
#: or, on Windows, CPU-only; this index holds the small CPU builds for both)
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: Windows: PyPI holds CPU-only torch; the CUDA builds come from PyTorch's index
CUDA_INDEX_WINDOWS = "https://download.pytorch.org/whl/cu128"
#: the training's imports; what ``check_python`` and :func:`probe` ask of an interpreter
TRAINING_MODULES = ("torch", "lightning", "onnx", "onnxruntime", "numpy")

PROBE = """
import json, sys
out = {"python": sys.version.split()[0], "executable": sys.executable}
try:
    import numpy, torch, lightning, onnx, onnxruntime
    out.update(ok=True, numpy=numpy.__version__, torch=torch.__version__,
               lightning=lightning.__version__, onnx=onnx.__version__,
               onnxruntime=onnxruntime.__version__, cuda=bool(torch.cuda.is_available()))
    if out["cuda"]:
        out["gpu"] = torch.cuda.get_device_name(0)
except Exception as exc:
    out.update(ok=False, error=f"{type(exc).__name__}: {exc}")
print(json.dumps(out))
"""


def envs_root(profile_dir: str | Path) -> Path:
    """``<profile>/arctic_assist/training_env``: the folder holding our environments."""
    return Path(profile_dir) / "arctic_assist" / "training_env"


def venv_python(env: str | Path) -> Path:
    env = Path(env)
    if os.name == "nt":
        return env / "Scripts" / "python.exe"
    return env / "bin" / "python"


def current_env(root: str | Path) -> Path | None:
    """The newest complete environment under ``root`` (marker and interpreter present)."""
    root = Path(root)
    if not root.is_dir():
        return None
    complete = [
        d
        for d in root.iterdir()
        if d.is_dir()
        and _ENV_NAME.match(d.name)
        and (d / MARKER).is_file()
        and venv_python(d).is_file()
    ]
    return max(complete, key=lambda d: d.name) if complete else None


def current_python(root: str | Path) -> str | None:
    env = current_env(root)
    return str(venv_python(env)) if env else None


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without the variables that point Python elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE")
        and k != "VIRTUAL_ENV"
    }
    env["PYTHONNOUSERSITE"] = "1"  # ~/.local's packages are not the environment's
    env.update(extra or {})
    return env


def probe(python: str, timeout: float = 180) -> dict[str, Any]:
    """Run ``python`` and ask it for the training's packages; ``ok`` says whether all import.

    Never raises for a bad interpreter: ``{"ok": False, "error": ...}`` says why.
    """
    if not (shutil.which(python) or os.path.isfile(python)):
        return {"ok": False, "error": f"'{python}' is not an executable file"}
    try:
        proc = subprocess.run(
            [python, "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"ok": False, "error": f"'{python}' could not be run: {exc}"}
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "ok" in doc:
            return doc
    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    return {"ok": False, "error": f"'{python}' is not a working Python: {tail}"}


def describe(result: dict[str, Any]) -> str:
    """One line for people: what an interpreter offers the training, or why it cannot."""
    if not result.get("ok"):
        return f"not usable: {result.get('error', 'unknown error')}"
    device = (
        f"CUDA GPU: {result.get('gpu', 'available')}" if result.get("cuda") else "CPU only (no GPU)"
    )
    return (
        f"Python {result.get('python')}, torch {result.get('torch')}, "
        f"Lightning {result.get('lightning')}; {device}"
    )


def base_python() -> str:
    """A Python interpreter that can make a venv: QGIS's own where it is a real one.

    Inside QGIS ``sys.executable`` is often QGIS itself; the interpreter QGIS embeds lives
    under ``sys.base_exec_prefix`` (``python.exe`` on Windows/OSGeo4W, ``bin/python3.X``
    elsewhere), then ``python3.X``/``python3`` on PATH.
    """
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.base_exec_prefix)
    candidates = [sys.executable] if Path(sys.executable).name.startswith("python") else []
    candidates += [
        str(prefix / "python.exe"),
        str(prefix / "python3.exe"),
        str(prefix / "bin" / f"python{ver}"),
        str(prefix / "bin" / "python3"),
        shutil.which(f"python{ver}") or "",
        shutil.which("python3") or "",
    ]
    for c in candidates:
        if not c or not os.path.isfile(c):
            continue
        try:
            ok = subprocess.run(
                [c, "-c", "import venv, ensurepip"],
                capture_output=True,
                timeout=60,
                env=clean_env(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok.returncode == 0:
            return c
    raise InputError(
        "No Python interpreter with the venv and ensurepip modules was found next to QGIS "
        "or on PATH (on Debian/Ubuntu: apt install python3-venv). Or point the training "
        "interpreter at an environment you made yourself: "
        f"python3 -m venv ENV && ENV/bin/python -m pip install -r {REQUIREMENTS}"
    )


def torch_requirement() -> str:
    """``torch==X`` as pinned in the requirements file."""
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*torch\s*==\s*([\w.]+)", line)
        if m:
            return f"torch=={m.group(1)}"
    raise ArcticAssistError(f"{REQUIREMENTS} pins no torch version")


def pip_arguments(build: str, torch_index: str | None, platform: str = sys.platform) -> list[str]:
    """What ``pip install`` is given beyond the requirements file, for torch's ``build``.

    ``torch_index``: None = the index for the build on this platform (CPU: PyTorch's CPU
    index and the ``+cpu`` wheel on Linux and Windows; CUDA: PyPI on Linux, PyTorch's CUDA
    index on Windows; macOS: PyPI, whose wheels are the only build); ``"none"`` = no index
    beyond pip's own configuration (an offline mirror, a wheel folder); anything else =
    that URL as an extra index.
    """
    if build not in BUILDS:
        raise InputError(f"TORCH_BUILD: '{build}' is not one of {', '.join(BUILDS)}.")
    torch = torch_requirement()
    mac = platform == "darwin"
    if torch_index is None:
        if build == "cpu":
            torch_index = "none" if mac else CPU_INDEX
        else:
            torch_index = CUDA_INDEX_WINDOWS if platform.startswith("win") else "none"
    args = [torch + "+cpu"] if build == "cpu" and not mac else []
    if torch_index != "none":
        args += ["--extra-index-url", torch_index]
    return args


def _lines(cmd: list[str], env: dict[str, str], canceled: Callable[[], bool]) -> Iterator[str]:
    """Run ``cmd`` in a process group of its own and yield its output lines (stderr
    merged); stop it on Cancel or when the caller stops. Raises on a non-zero exit."""
    from .training_run import new_group, output_lines

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **new_group()
    )
    tail: list[str] = []
    for raw in output_lines(proc, canceled, "Canceled."):
        line = raw.rstrip()
        tail = (tail + [line])[-15:]
        yield line
    if proc.returncode != 0:
        detail = "\n".join(t for t in tail if t.strip())
        raise ArcticAssistError(
            f"'{' '.join(cmd[:4])} ...' failed (exit status {proc.returncode}):\n{detail}"
        )


def _ours_incomplete(d: Path) -> bool:
    """A folder an earlier create left (named by us, no marker) whose process is gone."""
    from .leftovers import pid_alive

    m = _ENV_NAME.match(d.name)
    return bool(m) and not (d / MARKER).exists() and not pid_alive(int(m.group(1)))


def create(
    root: str | Path,
    build: str = "cpu",
    *,
    torch_index: str | None = None,
    pip_options: list[str] | None = None,
    python: str | None = None,
    say: Callable[[str], None] = print,
    progress: Callable[[float], None] = lambda p: None,
    canceled: Callable[[], bool] = lambda: False,
) -> tuple[Path, dict[str, Any]]:
    """Make a new training environment under ``root``; returns (its interpreter, probe).

    Built in its final folder ``root/env-<time>-<pid>`` (a venv is not moved: its paths are
    absolute), which becomes the current environment only when the probe passes and the
    marker is written; only then are the older environments of ours removed. Any failure
    or Cancel removes the new folder and leaves the previous environment as it was; a
    killed install leaves a folder without marker, removed by the next create.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for d in root.iterdir():
        if d.is_dir() and _ours_incomplete(d):
            shutil.rmtree(d, ignore_errors=True)
            say(f"Removed {d.name}, left by an interrupted install.")
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    new = root / f"env-{stamp}-{os.getpid()}"
    env = clean_env({"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    try:
        base = python or base_python()
        say(f"Creating a virtual environment with {base} in {new} ...")
        for line in _lines([base, "-m", "venv", str(new)], env, canceled):
            say(line)
        progress(5.0)
        py = str(venv_python(new))
        cmd = [py, "-m", "pip", "install", "--progress-bar", "off", "-r", str(REQUIREMENTS)]
        cmd += pip_arguments(build, torch_index) + list(pip_options or [])
        say("Installing the training requirements (torch is large: this takes minutes):")
        say(" ".join(cmd))
        collected = 0
        for line in _lines(cmd, env, canceled):
            say(line)
            if line.startswith("Collecting"):
                collected += 1
                progress(min(60.0, 5.0 + 1.2 * collected))
            elif line.startswith("Installing collected packages"):
                progress(70.0)
        progress(90.0)
        say("Checking the new environment ...")
        result = probe(py)
        if not result.get("ok"):
            raise ArcticAssistError(f"The new environment does not work: {result.get('error')}")
        if build == "cuda" and not result.get("cuda"):
            say(
                "Note: this torch build finds no CUDA GPU here (driver missing or too old?); "
                "training runs on the CPU."
            )
        if canceled():
            raise CanceledError("Canceled.")
        marker = {
            "format": "arctic_assist.training_env",
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "build": build,
            "torch_index": torch_index,
            "requirements": REQUIREMENTS.read_text(encoding="utf-8"),
            "probe": result,
        }
        (new / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    except BaseException:
        if new.exists() and not (new / MARKER).exists():
            shutil.rmtree(new, ignore_errors=True)
        raise
    for d in root.iterdir():
        if d != new and d.is_dir() and _ENV_NAME.match(d.name) and (d / MARKER).is_file():
            shutil.rmtree(d, ignore_errors=True)
            say(f"Removed the previous environment {d}.")
    progress(100.0)
    say(f"Training environment ready: {describe(result)}")
    return Path(py), result
