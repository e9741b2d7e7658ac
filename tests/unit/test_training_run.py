"""io/training_run: the training subprocess is streamed, and stopped with its process group."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from arctic_assist.core.errors import ArcticAssistError, CanceledError
from arctic_assist.io.training_run import handle_line, metrics_lines, new_group, stop, stream


class Feedback:
    def __init__(self, cancel_after: float | None = None) -> None:
        self.progress: list[float] = []
        self.info: list[str] = []
        self.console: list[str] = []
        self.t0 = time.monotonic()
        self.cancel_after = cancel_after

    def isCanceled(self) -> bool:  # QgsProcessingFeedback's name
        return self.cancel_after is not None and time.monotonic() - self.t0 > self.cancel_after

    def setProgress(self, value: float) -> None:
        self.progress.append(value)

    def pushInfo(self, text: str) -> None:
        self.info.append(text)

    def pushConsoleInfo(self, text: str) -> None:
        self.console.append(text)


def _script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_stream_forwards_progress_and_plain_lines(tmp_path):
    events = [{"event": "progress", "step": s, "total": 2, "loss": 0.5} for s in (1, 2)]
    code = "".join(f"print({json.dumps(json.dumps(e))})\n" for e in events) + "print('plain')\n"
    fb = Feedback()
    stream(_script(code), fb, str(tmp_path / "run"))
    assert fb.progress == [50.0, 100.0]
    assert fb.console == ["plain"]
    assert any(line.startswith("step 2/2") for line in fb.info)


def test_stream_reports_the_error_event(tmp_path):
    code = (
        "import json, sys\nprint(json.dumps({'event': 'error', 'message': 'bad data'}))\n"
        "sys.exit(2)\n"
    )
    with pytest.raises(ArcticAssistError, match="bad data"):
        stream(_script(code), Feedback(), str(tmp_path / "run"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_cancel_stops_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(CanceledError):
        stream(_script(code), Feedback(cancel_after=1.5), str(tmp_path / "run"))
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(
            ["ps", "-o", "stat=", "-p", str(child)], capture_output=True, text=True
        ).stdout.strip() in ("", "Z"):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the training's child {child} outlived Cancel")


def test_stop_waits_for_a_started_process():
    proc = subprocess.Popen(_script("import time; time.sleep(60)"), **new_group())
    stop(proc, grace_s=10)
    assert proc.poll() is not None


#: a model's provenance metrics as train.py writes them (rounded, NaN -> None)
SEG_METRICS = {
    "val": {
        "all": {
            "iou": 0.71851,
            "precision": 0.86936,
            "recall": 0.80548,
            "f1": 0.8362,
            "tp": 559,
            "fp": 84,
            "fn": 135,
        },
        "peel": {
            "iou": 0.71851,
            "precision": 0.86936,
            "recall": 0.80548,
            "f1": 0.8362,
            "tp": 559,
            "fp": 84,
            "fn": 135,
        },
    },
    "val@0.5": {
        "all": {"iou": 0.5, "precision": None, "recall": 0.25},
        "peel": {"iou": 0.6, "precision": 0.75, "recall": 0.8},
        "herschel": {"iou": None, "precision": None, "recall": None},
    },
}


def test_metrics_are_a_short_table_per_region():
    lines = metrics_lines(SEG_METRICS)
    assert lines[0] == "Validation metrics:"
    # one region: the pooled 'all' row is the same numbers and is left out
    assert lines[1].split() == [
        "peel",
        "(val)",
        "IoU",
        "0.719",
        "precision",
        "0.869",
        "recall",
        "0.805",
    ]
    rows = [" ".join(line.split()) for line in lines[2:]]
    assert rows == [
        "all (val, threshold 0.5) IoU 0.500 precision n/a recall 0.250",
        "peel (val, threshold 0.5) IoU 0.600 precision 0.750 recall 0.800",
        "herschel (val, threshold 0.5) IoU n/a precision n/a recall n/a",
    ]
    assert len({line.index("IoU") for line in lines[1:]}) == 1  # the columns line up
    text = "\n".join(lines)
    assert "None" not in text and "{" not in text and "0.71851" not in text


def test_contour_and_empty_metrics():
    lines = metrics_lines(
        {"mean_distance_m": 1387.2703448310115, "mean_distance_px": 28.3116, "n_images": 13}
    )
    assert [" ".join(line.split()) for line in lines[1:]] == [
        "mean distance: 1387.3 m",
        "mean distance: 28.312 px",
        "n images: 13",
    ]
    assert metrics_lines({}) == ["Validation metrics: none (no validation chips were scored)."]


def test_done_event_is_logged_as_the_table():
    fb = Feedback()
    line = json.dumps(
        {
            "event": "done",
            "output": "/tmp/m.onnx",
            "metrics": SEG_METRICS,
            "selection": {"threshold": 0.4},
            "timing": {"fit_s": None},
        }
    )
    assert handle_line(line, fb) is None
    assert fb.info[0] == "Training finished; exported /tmp/m.onnx"
    assert fb.info[1:] == metrics_lines(SEG_METRICS)
    assert not any("None" in i or "{" in i for i in fb.info)


def _manifest(folder, task, bands):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"task": task, "bands": bands}))
    return str(folder)


def test_start_model_is_the_default_model_where_its_task_and_bands_fit(tmp_path):
    """retrain_model's START: the task's default model when it fits the data, else scratch
    with the reason (bands named)."""
    from arctic_assist import about
    from arctic_assist.io.training_run import start_model

    rts, cobra = str(about.bundled_model("segmentation")), str(about.bundled_model("contour"))
    same = _manifest(tmp_path / "a", "segmentation", ["blue", "green", "red", "nir"])
    assert start_model("segmentation", same, rts)[0] == rts
    generic = _manifest(tmp_path / "b", "segmentation", ["band1", "band2", "band3", "band4"])
    assert start_model("segmentation", generic, rts)[0] == rts  # only the count to go by
    other = _manifest(tmp_path / "c", "segmentation", ["B4", "B3", "B2"])
    model, why = start_model("segmentation", other, rts)
    assert model is None and "B4, B3, B2" in why and "B8" in why
    fronts = _manifest(tmp_path / "d", "contour", ["band1"])
    assert start_model("contour", fronts, cobra)[0] == cobra
    assert start_model("contour", fronts, rts)[0] is None  # a segmentation model
    assert start_model("segmentation", fronts, rts) == (None, "")  # TASK's check speaks
    assert start_model("segmentation", same, str(tmp_path / "gone.onnx"))[0] is None
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    model, why = start_model("segmentation", same, str(tmp_path / "bad.onnx"))
    assert model is None and "cannot be read" in why
