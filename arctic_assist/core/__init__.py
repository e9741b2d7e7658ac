"""numpy-only core: never imports qgis, osgeo or torch."""
