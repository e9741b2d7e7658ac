"""Progress, Cancel and log for a run (detection, tracing): the one helper both use."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..core.errors import CanceledError

ProgressFn = Callable[[float], Any]
CancelFn = Callable[[], bool]
LogFn = Callable[[str], Any]


class Feedback:
    """``say`` logs a user-facing message (to ``logger`` and ``log``), ``report`` passes
    a percentage (clamped to 0..100) to ``progress``, ``check_cancel`` raises
    :class:`CanceledError` once ``is_canceled`` says so; ``step`` reports, then checks."""

    def __init__(
        self,
        progress: ProgressFn | None = None,
        is_canceled: CancelFn | None = None,
        log: LogFn | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.progress, self.is_canceled, self.log = progress, is_canceled, log
        self.logger = logger or logging.getLogger(__name__)

    def say(self, msg: str) -> None:
        self.logger.info(msg)
        if self.log is not None:
            self.log(msg)

    def warn(self, msg: str) -> None:
        """A message the user should not miss: a warning in the logger, "Warning: " in the log."""
        self.logger.warning(msg)
        if self.log is not None:
            self.log("Warning: " + msg)

    def report(self, pct: float) -> None:
        if self.progress is not None:
            self.progress(max(0.0, min(100.0, float(pct))))

    def check_cancel(self) -> None:
        if self.is_canceled is not None and self.is_canceled():
            raise CanceledError()

    def step(self, pct: float) -> None:
        self.report(pct)
        self.check_cancel()
