"""Running the training CLI (``python -m arctic_assist.training``) in a subprocess.

QGIS-free: the command line, the run folder (``run.json``, checkpoints, what a stopped run
leaves), streaming the JSON progress lines into a Processing-feedback-like object, and
stopping the process group on Cancel (POSIX and Windows), and the validation metrics as
lines a person reads (:func:`metrics_lines`). The Processing algorithm
``arctic_assist:retrain_model`` (:mod:`arctic_assist.processing.retrain_model`) wraps it.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..core.errors import ArcticAssistError, CanceledError, InputError


def package_parent() -> str:
    """The folder to put on PYTHONPATH so that ``import arctic_assist`` finds this plugin."""
    return str(Path(__file__).resolve().parents[2])


def training_threads() -> int:
    """CPU threads for the training: half the logical CPUs, at least one.

    That is PyTorch's own choice (physical cores) on the usual hyper-threaded laptop, and on
    a machine without SMT it leaves cores to QGIS, which keeps running: an oversubscribed
    PyTorch thread pool waits on its slowest thread at every operation (measured here: a
    PixelDINO step 5x slower with 2 threads than with 1 on a busy 2-core machine).
    """
    return max(1, (os.cpu_count() or 2) // 2)


def build_command(
    python: str,
    task: str,
    method: str,
    data: str,
    output: str,
    steps: int,
    device: str,
    base_model: str | None,
    work_dir: str,
    seed: int = 0,
) -> list[str]:
    command = "cobra" if task == "contour" else method
    cmd = [
        python,
        "-m",
        "arctic_assist.training",
        command,
        "--data",
        data,
        "--out",
        output,
        "--steps",
        str(steps),
        "--progress",
        "json",
        "--log-dir",
        work_dir,
        "--seed",
        str(int(seed)),
        "--threads",
        str(training_threads()),
    ]
    if task == "segmentation":
        cmd += ["--eval-split", "val"]  # export_training_data holds out 'val' chips
    if device != "auto":
        cmd += ["--accelerator", "gpu" if device == "cuda" else "cpu"]
    if base_model:
        cmd += ["--base-model", base_model]
    return cmd


def start_model(task: str, data: str, model: str | None) -> tuple[str | None, str]:
    """Whether a retraining on the training-data folder ``data`` can start from ``model``
    (the task's default model): ``(model, why)`` when its task and bands fit the data,
    ``(None, why not)`` otherwise (the run then starts from scratch)."""
    from ..core.bands import bands_fit
    from .models import read_spec

    if not model or not Path(model).is_file():
        return None, "there is no default model for this task"
    try:
        spec = read_spec(model)
        manifest = json.loads((Path(data) / "manifest.json").read_text(encoding="utf-8"))
    except (ArcticAssistError, OSError, ValueError) as exc:
        return None, f"the default model {model} cannot be read ({exc})"
    bands = [str(b) for b in manifest.get("bands") or []]
    if manifest.get("task", "segmentation") != task:
        return None, ""  # the TASK check names what to choose
    if spec.task != task:
        return None, f"the default model {model} is a '{spec.task}' model"
    fits = len(bands) == len(spec.bands) if task == "contour" else bands_fit(bands, spec.bands)
    if not fits:
        return None, (
            f"the default model {spec.name} expects bands {', '.join(spec.bands)} and the "
            f"training data has {', '.join(bands) or 'none'}"
        )
    return model, f"starting from the default model {spec.name} {spec.version} ({model})"


def check_python(python: str) -> None:
    """Refuse an interpreter that cannot run the training, naming what it lacks."""
    from .training_env import TRAINING_MODULES, probe

    result = probe(python)
    if not result.get("ok"):
        raise InputError(
            f"PYTHON: '{python}' cannot run the training ({result.get('error')}); it needs "
            f"{', '.join(TRAINING_MODULES)}. Create the training environment (Models "
            "dialog, or the algorithm arctic_assist:setup_training_environment), or point "
            "PYTHON at an interpreter that has them (e.g. <checkout>/.venv/bin/python after "
            "'make setup')."
        )


def output_lines(
    proc: subprocess.Popen, is_canceled: Callable[[], bool], canceled_message: str
) -> Iterator[str]:
    """The lines of ``proc``'s stdout as they come (a thread reads them), checking Cancel
    5 x a second; on Cancel, an error or when the caller stops, the process (its group:
    :func:`new_group`) is stopped. Returns once the process has ended."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:
            if is_canceled():
                raise CanceledError(canceled_message)
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            yield line
        proc.wait()
    except BaseException:
        stop(proc)
        raise


def stream(cmd: list[str], feedback, work_dir: str) -> None:
    """Run the training, forward its JSON progress, honour Cancel (checked 5x a second).

    ``feedback``: a Processing-feedback-like object (``isCanceled``, ``setProgress``,
    ``pushInfo``, ``pushConsoleInfo``). The process runs in its own process group (session
    on POSIX), which :func:`stop` ends as a whole; its stderr goes to ``work_dir/stderr.log``.
    """
    from .training_env import clean_env

    # QGIS's own Python paths stay out: the training imports this plugin and its own
    # environment's packages, nothing else
    env = clean_env({"PYTHONPATH": package_parent()})
    env["PYTHONUNBUFFERED"] = "1"
    env["ARCTIC_ASSIST_DIE_WITH_PARENT"] = "1"  # see training/__main__.die_with_parent
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    stderr_path = Path(work_dir) / "stderr.log"
    with stderr_path.open("w", encoding="utf-8") as stderr:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, **new_group()
        )
        error_message = None
        for line in output_lines(proc, feedback.isCanceled, "Training canceled."):
            error_message = handle_line(line.strip(), feedback) or error_message
    if proc.returncode != 0:
        tail = stderr_path.read_text(encoding="utf-8", errors="replace").strip()
        detail = (
            error_message or "\n".join(tail.splitlines()[-15:]) or f"exit status {proc.returncode}"
        )
        raise ArcticAssistError(f"Training failed: {detail}")


RUN_INFO = "run.json"


def checkpoints(work_dir: Path) -> list[Path]:
    """The run's checkpoints, newest last."""
    return sorted(work_dir.glob("*/checkpoints/*.ckpt"), key=lambda p: p.stat().st_mtime)


def prepare_run_dir(work_dir: Path, run_info: dict[str, Any], say) -> str | None:
    """Make ``work_dir`` ours for this run; the checkpoint to resume from, if any.

    A folder of ours (``run.json``) for the same data, task, method and base model with a
    checkpoint is resumed; one for something else is replaced. A folder that is not ours
    is refused, untouched.
    """
    info_path = work_dir / RUN_INFO
    if work_dir.exists():
        try:
            previous = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = None
        if previous is None:
            if work_dir.is_dir() and not any(work_dir.iterdir()):
                previous = {}
            else:
                raise InputError(
                    f"OUTPUT: the run folder '{work_dir}' exists but was not made by Retrain "
                    "model (no run.json); move it away or choose another OUTPUT. Nothing was "
                    "changed."
                )
        ckpts = checkpoints(work_dir)
        if previous == run_info and ckpts:
            return str(ckpts[-1])
        shutil.rmtree(work_dir)
        if previous:
            say(
                f"Removed the earlier run folder {work_dir} (another DATA, TASK, METHOD or "
                "model to start from)."
            )
    work_dir.mkdir(parents=True)
    info_path.write_text(json.dumps(run_info, indent=1), encoding="utf-8")
    return None


def stopped_message(work_dir: Path, how: str) -> str:
    """What is left after a canceled or failed run, and how to continue: the truth."""
    ckpts = checkpoints(work_dir)
    if not ckpts:
        shutil.rmtree(work_dir, ignore_errors=True)
        return (
            f"Training {how} before its first checkpoint; nothing was kept and no model "
            "was written."
        )
    return (
        f"Training {how}; no model was written. Its checkpoint {ckpts[-1].name} is kept "
        f"in {work_dir}: run Retrain model again with the same DATA, TASK, METHOD and "
        "OUTPUT to continue from it."
    )


def handle_line(line: str, feedback) -> str | None:
    """Forward one line of the training's stdout; returns an error message if it is one."""
    if not line:
        return None
    try:
        event = json.loads(line)
    except ValueError:
        feedback.pushConsoleInfo(line)
        return None
    kind = event.get("event") if isinstance(event, dict) else None
    if kind == "progress" and event.get("total"):
        feedback.setProgress(100.0 * event["step"] / event["total"])
        if event["step"] % 50 == 0 or event["step"] == event["total"]:
            feedback.pushInfo(
                f"step {event['step']}/{event['total']} "
                f"loss {float(event.get('loss', float('nan'))):.4f}"
            )
    elif kind == "error":
        return str(event.get("message"))
    elif kind in ("done", "metrics"):
        metrics = (
            event.get("metrics")
            if kind == "done"
            else {k: v for k, v in event.items() if k != "event"}
        )
        if kind == "done":
            feedback.pushInfo(f"Training finished; exported {event.get('output')}")
        for row in metrics_lines(metrics if isinstance(metrics, Mapping) else {}):
            feedback.pushInfo(row)
    elif kind:
        feedback.pushInfo(line)
    return None


#: the scores shown per region, in this order
SCORES = (("iou", "IoU"), ("precision", "precision"), ("recall", "recall"))


def _number(value: Any, unit: str = "") -> str:
    """A rounded number for people: 3 decimals below 100, 1 above, ints as they are."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a" if value is None or isinstance(value, float) else str(value)
    if isinstance(value, int):
        return f"{value}{unit}"
    if value != value:  # NaN: a score with nothing to count
        return "n/a"
    return f"{value:.1f}{unit}" if abs(value) >= 100 else f"{value:.3f}{unit}"


def _is_scores(value: Any) -> bool:
    return isinstance(value, Mapping) and any(k in value for k, _ in SCORES)


def metrics_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The validation metrics of a model's provenance as a short table, one line per row.

    Segmentation (``{split: {region: {iou, precision, recall, ...}}}``): one row per split
    and region with IoU, precision and recall rounded to 3 decimals (``n/a`` where nothing
    was there to count); the pooled ``all`` row is left out when there is one region only
    (it is the same numbers). A split ``val@0.5`` is the same split scored at threshold 0.5.
    Contour and other flat metrics (``{name: number}``): one row per metric. Cells are
    padded so that the columns line up in a monospaced log and still read well where
    spaces collapse (each number carries its name). Empty metrics give one line saying so.
    """
    rows: list[list[str]] = []
    flat: list[tuple[str, str]] = []
    for split, value in metrics.items():
        if isinstance(value, Mapping) and value and all(_is_scores(v) for v in value.values()):
            regions = [r for r in value if not (r == "all" and len(value) == 2)]
            name, _, at = str(split).partition("@")
            label = f"{name}, threshold {at}" if at else name
            for region in regions:
                scores = value[region]
                rows.append(
                    [f"{region} ({label})"]
                    + [f"{word} {_number(scores.get(key))}" for key, word in SCORES]
                )
        elif _is_scores(value):
            rows.append(
                [str(split)] + [f"{word} {_number(value.get(key))}" for key, word in SCORES]
            )
        elif not isinstance(value, Mapping | list):
            unit = (
                " m" if str(split).endswith("_m") else (" px" if str(split).endswith("_px") else "")
            )
            words = str(split).removesuffix("_m").removesuffix("_px").replace("_", " ")
            flat.append((words, _number(value, unit)))
    if not rows and not flat:
        return ["Validation metrics: none (no validation chips were scored)."]
    out = ["Validation metrics:"]
    if rows:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out += [
            "  " + "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        ]
    if flat:
        width = max(len(k) for k, _ in flat)
        out += [f"  {k + ':':<{width + 1}} {v}" for k, v in flat]
    return out


def new_group() -> dict[str, Any]:
    """``Popen`` arguments that start the training in a process group of its own."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def stop(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    """Stop a training started with :func:`new_group`, politely first, and wait for it.

    POSIX: SIGTERM to its whole process group (data-loader workers included), SIGKILL
    after ``grace_s``. Windows: CTRL_BREAK_EVENT to its process group, then terminate.
    """
    if proc.poll() is not None:
        return
    windows = os.name == "nt"
    try:
        if windows:
            proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if proc.poll() is None:
        if windows:
            proc.kill()
        else:
            os.killpg(proc.pid, signal.SIGKILL)
