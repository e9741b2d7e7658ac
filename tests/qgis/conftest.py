import pytest


@pytest.fixture(scope="session")
def provider(qgis_app, qgis_processing):
    """The arctic_assist provider registered in the Processing registry, as initProcessing does."""
    from arctic_assist.processing.provider import ArcticAssistProvider

    registry = qgis_app.processingRegistry()
    existing = registry.providerById("arctic_assist")
    if existing is not None:
        yield existing
        return
    prov = ArcticAssistProvider()
    assert registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)
