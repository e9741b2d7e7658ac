"""Fixtures for the training tests: a tiny synthetic training-data folder (CPU, seconds)."""

from __future__ import annotations

import pytest

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # the tests that need torch skip themselves
    torch = None


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    pytest.importorskip("osgeo.gdal")
    from arctic_assist.training import synthetic
    from arctic_assist.io.training_data import build_dataset

    root = tmp_path_factory.mktemp("tiny")
    idx = synthetic.generate(root / "scenes", {"A": 1, "D": 1}, size=64, seed=1)
    rasters = [idx["A"][0]["tif"], idx["D"][0]["tif"]]
    labels = [idx["A"][0]["labels"], idx["D"][0]["labels"]]
    return build_dataset(
        rasters,
        labels,
        root / "ds",
        32,
        regions=["A", "D"],
        split_fn=lambda ri, x, y, w, h: "train" if ri == 0 else "test",
    )


@pytest.fixture(scope="session")
def rts_dataset(tmp_path_factory):
    """A small labelled folder whose training chips hold thaw slumps in some chips only."""
    pytest.importorskip("osgeo.gdal")
    from arctic_assist.training import synthetic
    from arctic_assist.io.training_data import build_dataset

    root = tmp_path_factory.mktemp("rts")
    idx = synthetic.generate(root / "scenes", {"A": 1}, size=96, seed=1)
    return build_dataset(
        [idx["A"][0]["tif"]], [idx["A"][0]["labels"]], root / "ds", 32, regions=["A"]
    )
