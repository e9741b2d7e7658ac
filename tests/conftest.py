import importlib.util
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/support.py, onnx_factory.py

NO_TORCH_REASON = (
    "needs torch, and the QGIS 3.40 LTR lane (make test-ltr, ARCTIC_ASSIST_LTR=1) installs "
    "none (the CUDA wheels are gigabytes); make test runs it on QGIS 3.22"
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_torch: trains or probes torch; skipped in the LTR lane, which has none"
    )


def pytest_collection_modifyitems(config, items):
    """Only the LTR lane skips them: elsewhere a missing torch still fails loudly."""
    if os.environ.get("ARCTIC_ASSIST_LTR") != "1" or importlib.util.find_spec("torch"):
        return
    skip = pytest.mark.skip(reason=NO_TORCH_REASON)
    for item in items:
        if item.get_closest_marker("needs_torch"):
            item.add_marker(skip)
