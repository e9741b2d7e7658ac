"""io/training_run: the training subprocess is streamed, and stopped with its process group."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from arctic_assist.core.errors import ArcticAssistError, CanceledError
from arctic_assist.io.training_run import new_group, stop, stream


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
    code = "import json, sys\nprint(json.dumps({'event': 'error', 'message': 'bad data'}))\n" \
           "sys.exit(2)\n"
    with pytest.raises(ArcticAssistError, match="bad data"):
        stream(_script(code), Feedback(), str(tmp_path / "run"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_cancel_stops_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(c.pid))\n"
            "print('started', flush=True)\n"
            "time.sleep(60)\n")
    with pytest.raises(CanceledError):
        stream(_script(code), Feedback(cancel_after=1.5), str(tmp_path / "run"))
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["ps", "-o", "stat=", "-p", str(child)], capture_output=True,
                          text=True).stdout.strip() in ("", "Z"):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the training's child {child} outlived Cancel")


def test_stop_waits_for_a_started_process():
    proc = subprocess.Popen(_script("import time; time.sleep(60)"), **new_group())
    stop(proc, grace_s=10)
    assert proc.poll() is not None
