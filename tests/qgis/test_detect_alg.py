"""detect_thaw_slumps through the Processing registry; the result is styled when loaded."""

import numpy as np
from onnx_factory import weighted_sum_model
from qgis.core import QgsProject
from support import write_raster


def test_run_and_load_applies_style(provider, tmp_path):
    import processing

    rng = np.random.default_rng(3)
    raster = write_raster(
        tmp_path / "scene.tif",
        rng.integers(200, 4000, (4, 64, 64)).astype(np.uint16),
        descriptions=["B02_blue", "B03_green", "B04_red", "B08_nir"],
    )
    model = weighted_sum_model(tmp_path / "m.onnx", weights=[0.5, -1.0, 1.0, 0.2])
    out = tmp_path / "rts.gpkg"
    result = processing.runAndLoadResults(
        "arctic_assist:detect_thaw_slumps",
        {"INPUT": str(raster), "MODEL": str(model), "OUTPUT": str(out), "MIN_AREA": 0},
    )
    assert result["N_FEATURES"] > 0 and result["PROVIDER"] == "CPUExecutionProvider"
    layers = [
        lyr
        for lyr in QgsProject.instance().mapLayers().values()
        if lyr.name().startswith("Thaw slump proposals (")
    ]
    assert layers, "the output was not added to the project"
    layer = layers[-1]
    assert "(scene, " in layer.name()  # the source raster layer, then the time
    assert layer.featureCount() == result["N_FEATURES"]
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "status"
    assert {c.value() for c in renderer.categories()} >= {"proposed", "accepted", "rejected"}
    QgsProject.instance().removeAllMapLayers()


def test_cleanup_parameters(provider, tmp_path):
    """MIN_SEGMENT, FILL_HOLES and FILTER reach the run; the defaults are io.vector's."""
    import processing
    from osgeo import ogr

    from arctic_assist.io.vector import DEFAULT_CLEANUP
    from arctic_assist.processing import detect_thaw_slumps as alg

    assert (
        alg.DEFAULT_MIN_SEGMENT,
        alg.DEFAULT_FILL_HOLES,
        alg.FILTER_SIZES[alg.FILTERS.index("none")],
    ) == (
        DEFAULT_CLEANUP.min_segment_px,
        DEFAULT_CLEANUP.fill_holes_px,
        DEFAULT_CLEANUP.filter_size,
    )
    img = np.full((4, 64, 64), 1000, np.uint16)
    img[:, 10:40, 10:40] = 6000  # a 30 x 30 slump ...
    img[:, 20:22, 20:22] = 1000  # ... with a 4 px hole
    img[:, 50:51, 50:53] = 6000  # a 3 px speck
    raster = write_raster(tmp_path / "s.tif", img, nodata=None)
    model = weighted_sum_model(tmp_path / "m.onnx", weights=[1.0, 1.0, 1.0, 1.0], bias=-1.2)

    def areas(**params) -> list[float]:
        out = tmp_path / f"o{len(params)}.gpkg"
        processing.run(
            "arctic_assist:detect_thaw_slumps",
            {
                "INPUT": str(raster),
                "MODEL": str(model),
                "OUTPUT": str(out),
                "MIN_AREA": 0,
                "SIMPLIFY": 0,
                **params,
            },
        )
        ds = ogr.Open(str(out))
        return sorted(f.GetField("area_m2") for f in ds.GetLayer(0))

    assert areas() == [900 * 100.0]  # defaults: speck out, hole filled
    assert areas(MIN_SEGMENT=0, FILL_HOLES=0) == [300.0, 896 * 100.0]
    # 3 x 3 majority: the hole and the speck go, and so do the 4 corners of the square
    assert areas(MIN_SEGMENT=0, FILL_HOLES=0, FILTER=1) == [896 * 100.0]


def test_adapt_parameter_brings_a_darker_scene_back(provider, tmp_path):
    """ADAPT (auto by default) scales a scene whose every band is x 0.6 back to the band
    medians the model carries; ADAPT=2 (never) then proposes nothing."""
    import processing
    from osgeo import ogr

    from onnx_factory import make_spec
    from arctic_assist.processing import detect_thaw_slumps as alg

    assert alg.ADAPT_MODES[0] == "auto"
    img = np.full((4, 64, 64), 1000, np.uint16)
    img[:, 10:40, 10:40] = 3000
    medians = tuple(float(v) for v in np.median(img.reshape(4, -1), axis=1))
    # sigmoid(3 * sum(DN * 1e-4) - 2.4): background 0.23, slump 0.77; x 0.6: slump 0.44
    model = weighted_sum_model(
        tmp_path / "m.onnx", [3.0] * 4, -2.4, spec=make_spec(input_medians=medians)
    )
    clear = write_raster(tmp_path / "clear.tif", img, nodata=None)
    dark = write_raster(tmp_path / "dark.tif", (img * 0.6).astype(np.uint16), nodata=None)

    def area(raster, **params) -> float:
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}.gpkg"
        processing.run(
            "arctic_assist:detect_thaw_slumps",
            {
                "INPUT": str(raster),
                "MODEL": str(model),
                "OUTPUT": str(out),
                "MIN_AREA": 0,
                **params,
            },
        )
        ds = ogr.Open(str(out))  # the layer needs its datasource alive
        return sum(f.GetField("area_m2") for f in ds.GetLayer(0))

    assert area(clear) == area(dark) == 900 * 100.0
    assert area(dark, ADAPT=2) == 0.0
    assert area(dark, ADAPT=1) == 900 * 100.0


def test_proposals_have_a_spatial_index_that_follows_edits(provider, tmp_path, caplog):
    """The packed R-tree (io/gpkg_rtree.py) as QGIS sees it: present, and right after an
    expert moves a proposal, draws one and saves (QGIS's edits go through the index's
    triggers, the insert trigger put back)."""
    import sqlite3

    import processing
    from qgis.core import (
        QgsFeature,
        QgsFeatureRequest,
        QgsFeatureSource,
        QgsGeometry,
        QgsRectangle,
        QgsVectorLayer,
    )

    bright = np.kron(np.indices((12, 12)).sum(0) % 2, np.ones((8, 8)))  # 72 squares
    raster = write_raster(
        tmp_path / "scene.tif",
        np.repeat((200 + 3800 * bright)[None], 4, 0).astype(np.uint16),
        descriptions=["B02_blue", "B03_green", "B04_red", "B08_nir"],
    )
    model = weighted_sum_model(tmp_path / "m.onnx", weights=[0, 0, 1.0, 0], bias=-0.2)
    out = tmp_path / "rts.gpkg"
    result = processing.run(
        "arctic_assist:detect_thaw_slumps",
        {"INPUT": str(raster), "MODEL": str(model), "OUTPUT": str(out), "MIN_AREA": 0},
    )
    n = result["N_FEATURES"]
    assert n > 60  # more than one R-tree node holds
    assert "not packed" not in caplog.text  # packed with this GDAL, not the fallback
    layer = QgsVectorLayer(str(out), "p", "ogr")
    assert layer.hasSpatialIndex() == QgsFeatureSource.SpatialIndexPresent
    feature = next(layer.getFeatures())
    far = QgsRectangle(0, 0, 10, 10)
    assert not list(layer.getFeatures(QgsFeatureRequest().setFilterRect(far)))
    layer.startEditing()
    assert layer.changeGeometry(feature.id(), QgsGeometry.fromRect(QgsRectangle(2, 2, 4, 4)))
    drawn = QgsFeature(layer.fields())  # and one drawn by hand
    drawn.setGeometry(QgsGeometry.fromRect(QgsRectangle(6, 6, 8, 8)))
    assert layer.addFeature(drawn)
    assert layer.commitChanges()
    hits = list(layer.getFeatures(QgsFeatureRequest().setFilterRect(far)))
    assert len(hits) == 2 and feature.id() in {f.id() for f in hits}
    del layer
    con = sqlite3.connect(out)
    try:
        assert con.execute("SELECT rtreecheck('rtree_thaw_slumps_geom')").fetchone()[0] == "ok"
        assert con.execute("SELECT count(*) FROM rtree_thaw_slumps_geom").fetchone()[0] == n + 1
    finally:
        con.close()
