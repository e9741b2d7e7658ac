"""Arctic Assist: PixelDINO thaw-slump and COBRA calving-front proposals in QGIS.

QGIS calls :func:`classFactory`; ``qgis_process`` calls the plugin's ``initProcessing``.
Importing this package imports nothing heavy (no numpy, onnxruntime or torch).
"""


def classFactory(iface):  # QGIS API name
    from .plugin import ArcticAssistPlugin

    return ArcticAssistPlugin(iface)
