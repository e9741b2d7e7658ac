"""Errors that carry a message meant for the user (no traceback is shown for these)."""

from __future__ import annotations


class ArcticAssistError(Exception):
    """A problem the user can fix; ``str(exc)`` is the one clear, actionable message."""


class InputError(ArcticAssistError):
    """Bad input data: bands, CRS, extent, nodata, label layers, output paths."""


class ModelError(ArcticAssistError):
    """The ONNX model cannot be used: corrupt, no metadata, wrong task, opset too new."""


class CanceledError(ArcticAssistError):
    """The user pressed Cancel; outputs were not written."""

    def __init__(self, message: str = "Canceled by the user; no output was written.") -> None:
        super().__init__(message)
