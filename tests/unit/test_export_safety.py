"""export_training_data never deletes what it did not write, swaps atomically, cleans up what
a killed run left, and says one sentence for bad input (issue 16)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr, osr
from support import REPO, write_raster

from arctic_assist.core.errors import InputError
from arctic_assist.io.training_export import TEMP_MARKER, export_training_data

ORIGIN = (470890.0, 7550020.0)


def square(x, y, size):
    return f"POLYGON(({x} {y},{x + size} {y},{x + size} {y + size},{x} {y + size},{x} {y}))"


def labels_file(path, items, epsg=32608, status=True):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    if status:
        lyr.CreateField(ogr.FieldDefn("status", ogr.OFTString))
    for wkt, st in items:
        f = ogr.Feature(lyr.GetLayerDefn())
        if status:
            f.SetField("status", st)
        f.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(f)
    ds = None
    return path


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    raster = write_raster(
        tmp_path / "in" / "scene.tif",
        rng.integers(100, 3000, (4, 96, 96)).astype(np.uint16),
        descriptions=["B2", "B3", "B4", "B8"],
    )
    labels = labels_file(
        tmp_path / "in" / "p.gpkg", [(square(ORIGIN[0] + 100, ORIGIN[1] - 400, 200), "accepted")]
    )
    return raster, labels


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def export(scene, out, **kw):
    raster, labels = scene
    return export_training_data(str(labels), [str(raster)], str(out), chip_size=48, **kw)


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}"))


def test_folder_of_other_files_is_refused_and_untouched(scene, tmp_path):
    out = tmp_path / "my_thesis"
    (out / "figures").mkdir(parents=True)
    (out / "chapter1.tex").write_text("years of work")
    (out / "figures" / "fig1.png").write_bytes(b"\x89PNG...")
    before = digest(out)
    with pytest.raises(InputError, match="not empty") as info:
        export(scene, out)
    msg = str(info.value)
    assert "OUTPUT" in msg and "my_thesis" in msg and "chapter1.tex" in msg
    assert "Nothing was changed" in msg
    assert digest(out) == before
    assert leftovers(tmp_path, "my_thesis") == []


def test_previous_export_is_replaced(scene, tmp_path):
    out = tmp_path / "data"
    export(scene, out)
    first = digest(out)
    (out / "manifest.json").touch()  # still ours
    res = export(scene, out)
    assert res.n_chips > 0 and digest(out) == first
    assert leftovers(tmp_path, "data") == []


def test_empty_folder_is_used(scene, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    export(scene, out)
    assert (out / "manifest.json").is_file()


@pytest.mark.parametrize("extra", ["notes.txt", "chips/my_own_chip.tif", "other/x.csv"])
def test_previous_export_with_foreign_files_is_refused(scene, tmp_path, extra):
    out = tmp_path / "data"
    export(scene, out)
    (out / extra).parent.mkdir(parents=True, exist_ok=True)
    (out / extra).write_text("mine")
    before = digest(out)
    with pytest.raises(InputError, match="did not write") as info:
        export(scene, out)
    assert extra.split("/")[0] in str(info.value)
    assert digest(out) == before
    assert leftovers(tmp_path, "data") == []


def test_manifest_of_another_builder_is_not_ours(scene, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "manifest.json").write_text(
        '{"format": "arctic_assist.training_data", "provenance": {"builder": "someone"}}'
    )
    (out / "keep.tif").write_bytes(b"x")
    with pytest.raises(InputError, match="not a previous"):
        export(scene, out)
    assert (out / "keep.tif").read_bytes() == b"x"


def test_output_that_is_a_file_is_refused(scene, tmp_path):
    out = tmp_path / "data.txt"
    out.write_text("a file")
    with pytest.raises(InputError, match="is a file"):
        export(scene, out)
    assert out.read_text() == "a file"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_runs_are_removed_and_only_those(scene, tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".data.part-{dead}-abc"
    (stale / "data" / "chips").mkdir(parents=True)
    (stale / TEMP_MARKER).write_text("")
    (stale / "data" / "chips" / "x.tif").write_bytes(b"0" * 1000)
    unmarked = tmp_path / f".data.part-{dead}-xyz"  # named like ours, but not ours
    unmarked.mkdir()
    (unmarked / "user.txt").write_text("keep")
    live = tmp_path / f".data.part-{os.getppid()}-def"  # a running process's
    live.mkdir()
    (live / TEMP_MARKER).write_text("")
    export(scene, tmp_path / "data")
    assert not stale.exists()
    assert (unmarked / "user.txt").read_text() == "keep"
    assert live.exists()


def test_previous_export_moved_aside_by_a_killed_swap_is_restored(scene, tmp_path):
    out = tmp_path / "data"
    export(scene, out)
    first = digest(out)
    stale = tmp_path / f".data.part-{_dead_pid()}-abc"
    stale.mkdir()
    (stale / TEMP_MARKER).write_text("")
    out.rename(stale / "previous")  # what a kill between the two renames leaves
    with pytest.raises(InputError):  # a failing run: the previous export must come back
        export_training_data(
            str(scene[1]), [str(scene[0])], str(out), chip_size=48, labels_layer="no_such_layer"
        )
    assert digest(out) == first and not stale.exists()


def test_only_reviewed_without_status_field_is_refused(scene, tmp_path):
    raster, _ = scene
    labels = labels_file(
        tmp_path / "nostatus.gpkg",
        [(square(ORIGIN[0] + 100, ORIGIN[1] - 400, 200), None)],
        status=False,
    )
    with pytest.raises(InputError, match="no 'status' field") as info:
        export_training_data(str(labels), [str(raster)], str(tmp_path / "data"), chip_size=48)
    assert "ONLY_REVIEWED" in str(info.value)
    res = export_training_data(
        str(labels), [str(raster)], str(tmp_path / "data"), chip_size=48, only_reviewed=False
    )
    assert res.n_labels == 1


def test_labels_entirely_outside_the_raster_are_refused(scene, tmp_path):
    raster, _ = scene
    far = labels_file(
        tmp_path / "far.gpkg", [(square(ORIGIN[0] + 50000, ORIGIN[1], 200), "accepted")]
    )
    with pytest.raises(InputError, match="none of the 1 label") as info:
        export_training_data(str(far), [str(raster)], str(tmp_path / "data"), chip_size=48)
    assert "scene.tif" in str(info.value)
    assert not (tmp_path / "data").exists() and leftovers(tmp_path, "data") == []


def test_truncated_raster_gives_one_sentence(scene, tmp_path):
    raster, labels = scene
    rng = np.random.default_rng(0)
    big = write_raster(
        tmp_path / "big.tif", rng.integers(100, 3000, (4, 300, 300)).astype(np.uint16)
    )
    data = big.read_bytes()
    big.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        export_training_data(str(labels), [str(big)], str(tmp_path / "data"), chip_size=48)
    assert "big.tif" in str(info.value)
    assert not (tmp_path / "data").exists() and leftovers(tmp_path, "data") == []


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from arctic_assist.io.training_export import export_training_data
    calls = []
    def is_canceled():
        calls.append(1)
        if len(calls) == 2:  # the new folder is complete, just before the swap
            print("READY", flush=True)
            time.sleep(600)
        return False
    export_training_data({labels!r}, [{raster!r}], {out!r}, chip_size=48,
                         is_canceled=is_canceled)
""")


def test_killed_export_keeps_the_previous_one_and_next_run_cleans_up(scene, tmp_path):
    raster, labels = scene
    out = tmp_path / "data"
    export(scene, out)
    first = digest(out)
    script = KILL_SCRIPT.format(
        repo=str(REPO), labels=str(labels), raster=str(raster), out=str(out)
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert digest(out) == first  # the previous export is intact
    left = leftovers(tmp_path, "data")
    assert len(left) == 1 and left[0].startswith(f".data.part-{proc.pid}-")
    assert (tmp_path / left[0] / TEMP_MARKER).is_file()
    export(scene, out)  # the next run removes what the killed one left
    assert leftovers(tmp_path, "data") == []
    assert digest(out) == first


def test_raster_too_large_for_memory_is_refused_before_reading(scene, tmp_path):
    from osgeo import gdal

    _, labels = scene
    huge = tmp_path / "huge.tif"
    ds = gdal.GetDriverByName("GTiff").Create(
        str(huge),
        100000,
        100000,
        4,
        gdal.GDT_UInt16,
        options=["TILED=YES", "SPARSE_OK=TRUE", "BIGTIFF=YES"],
    )
    ds.SetGeoTransform((ORIGIN[0], 10, 0, ORIGIN[1], 0, -10))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32608)
    ds.SetProjection(srs.ExportToWkt())
    ds = None
    with pytest.raises(InputError, match="limited to 2 GB") as info:
        export_training_data(str(labels), [str(huge)], str(tmp_path / "data"), chip_size=48)
    assert "100000 x 100000" in str(info.value) and "huge.tif" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a raster at all"])
def test_empty_or_non_raster_file(scene, tmp_path, content):
    _, labels = scene
    bad = tmp_path / "bad.tif"
    bad.write_bytes(content)
    with pytest.raises(InputError, match="not a raster GDAL can read"):
        export_training_data(str(labels), [str(bad)], str(tmp_path / "data"), chip_size=48)
    with pytest.raises(InputError, match="does not exist"):
        export_training_data(
            str(labels), [str(tmp_path / "nope.tif")], str(tmp_path / "data"), chip_size=48
        )


def test_chip_size_out_of_range(scene, tmp_path):
    with pytest.raises(InputError, match="between 16 and 4096"):
        export_training_data(
            str(scene[1]), [str(scene[0])], str(tmp_path / "data"), chip_size=100000
        )


def test_export_reports_progress_and_honours_cancel_while_cutting_chips(scene, tmp_path):
    from arctic_assist.core.errors import CanceledError

    raster, labels = scene
    out = tmp_path / "data"
    export(scene, out)
    before = digest(out)
    seen: list[float] = []

    def cancel_once_cutting() -> bool:
        return len(seen) >= 1  # after the first row of chips

    with pytest.raises(CanceledError):
        export_training_data(
            str(labels),
            [str(raster)],
            str(out),
            chip_size=16,
            progress=seen.append,
            is_canceled=cancel_once_cutting,
        )
    assert seen and digest(out) == before
    assert leftovers(tmp_path, "data") == []
    seen.clear()
    export_training_data(str(labels), [str(raster)], str(out), chip_size=16, progress=seen.append)
    assert len(seen) >= 5 and seen == sorted(seen)
