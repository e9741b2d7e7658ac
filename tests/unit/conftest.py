"""Unit-tier fixtures: synthetic GeoTIFFs written with GDAL, the shared real data folder.

No QGIS here (run with ``-p no:qgis``); GDAL and onnxruntime are fine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx_factory import slump_image, write_geotiff

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real third-party rasters); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real test data not found at {SHARED_DATA} (../shared/data); "
            "these tests need the shared data folder"
        )
    return SHARED_DATA


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_raster(data=None, name='img.tif', **write_geotiff_kwargs)``."""

    def factory(data: np.ndarray | None = None, name: str = "img.tif", **kw) -> Path:
        return write_geotiff(tmp_path / name, slump_image() if data is None else data, **kw)

    return factory
