"""detect_thaw_slumps through the Processing registry; the result is styled when loaded."""

import numpy as np
from onnx_factory import weighted_sum_model
from qgis.core import QgsProject
from support import write_raster


def test_run_and_load_applies_style(provider, tmp_path):
    import processing

    rng = np.random.default_rng(3)
    raster = write_raster(tmp_path / "scene.tif",
                          rng.integers(200, 4000, (4, 64, 64)).astype(np.uint16),
                          descriptions=["B02_blue", "B03_green", "B04_red", "B08_nir"])
    model = weighted_sum_model(tmp_path / "m.onnx", weights=[0.5, -1.0, 1.0, 0.2])
    out = tmp_path / "rts.gpkg"
    result = processing.runAndLoadResults("arctic_assist:detect_thaw_slumps", {
        "INPUT": str(raster), "MODEL": str(model), "OUTPUT": str(out), "MIN_AREA": 0})
    assert result["N_FEATURES"] > 0 and result["PROVIDER"] == "CPUExecutionProvider"
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values()
              if lyr.name().startswith("Thaw slump proposals (")]
    assert layers, "the output was not added to the project"
    layer = layers[-1]
    assert "(scene, " in layer.name()  # the source raster layer, then the time
    assert layer.featureCount() == result["N_FEATURES"]
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "status"
    assert {c.value() for c in renderer.categories()} >= {"proposed", "accepted", "rejected"}
    QgsProject.instance().removeAllMapLayers()
