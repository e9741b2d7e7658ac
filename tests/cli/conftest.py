from pathlib import Path

import pytest
from support import link_checkout_plugin, make_profile, qgis_env


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """qgis_process environment: throw-away profile, the checkout as plugin, venv on PYTHONPATH."""
    root: Path = tmp_path_factory.mktemp("qgis_cli")
    plugins = root / "plugins"
    link_checkout_plugin(plugins)
    config = make_profile(root / "config")
    return qgis_env(config, plugins)
