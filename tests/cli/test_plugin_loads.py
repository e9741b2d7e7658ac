"""qgis_process loads the plugin from a throw-away profile and lists its algorithms."""

import zipfile

from support import REPO, make_profile, qgis_env, run_qgis_process

ALGORITHMS = [
    "arctic_assist:detect_thaw_slumps",
    "arctic_assist:trace_calving_front",
    "arctic_assist:front_distance",
    "arctic_assist:export_training_data",
    "arctic_assist:retrain_model",
    "arctic_assist:setup_training_environment",
]


def _loaded_plugins(stdout: str) -> set[str]:
    return {line[1:].strip() for line in stdout.splitlines() if line.startswith("*")}


def _available_plugins(stdout: str) -> set[str]:
    """Every plugin qgis_process lists (loaded or not), after its 'Available plugins' header."""
    assert "Available plugins" in stdout, stdout
    body = stdout.split("Available plugins", 1)[1].splitlines()[1:]
    return {line.lstrip("* ").strip() for line in body if line.startswith(("*", "  "))}


def test_plugins_marks_arctic_assist_loaded(cli_env):
    proc = run_qgis_process(["plugins"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "arctic_assist" in _loaded_plugins(proc.stdout), proc.stdout


def test_plugin_disabled_in_profile_is_not_loaded(tmp_path, cli_env):
    config = make_profile(tmp_path / "config", enabled=False)
    env = dict(cli_env, QGIS_CUSTOM_CONFIG_PATH=str(config))
    proc = run_qgis_process(["plugins"], env)
    assert proc.returncode == 0, proc.stderr
    # found in the plugin path (so the check below is not passed by an empty listing) ...
    assert "arctic_assist" in _available_plugins(proc.stdout), proc.stdout
    # ... while QGIS's own Processing plugin is loaded and ours is not
    assert "processing" in _loaded_plugins(proc.stdout), proc.stdout
    assert "arctic_assist" not in _loaded_plugins(proc.stdout), proc.stdout


def test_list_shows_provider_and_algorithms(cli_env):
    proc = run_qgis_process(["list"], cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "Arctic Assist" in proc.stdout
    for alg in ALGORITHMS:
        assert alg in proc.stdout


def test_every_algorithm_has_help(cli_env):
    for alg in ALGORITHMS:
        proc = run_qgis_process(["help", alg], cli_env)
        assert proc.returncode == 0, proc.stderr
        description = proc.stdout.split("Description")[1].split("Arguments")[0]
        assert len(description.strip(" -\n")) > 200, f"{alg} has no real help text"


def test_package_zip_installs_into_a_profile(tmp_path, cli_env):
    """make package's zip, unzipped into a fresh profile, is loaded by qgis_process."""
    import subprocess
    import sys

    dist = tmp_path / "dist"
    subprocess.run([sys.executable, str(REPO / "tools" / "package.py"), str(dist)], check=True)
    (zip_path,) = dist.glob("arctic_assist-*.zip")
    assert zip_path.stat().st_size < 25 * 1024 * 1024
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert all(n.startswith("arctic_assist/") for n in names)
    assert "arctic_assist/metadata.txt" in names and "arctic_assist/__init__.py" in names
    assert any(n.startswith("arctic_assist/resources/styles/") for n in names)
    assert not any("tests/" in n or "__pycache__" in n or n.endswith(".pyc") for n in names)

    config = make_profile(tmp_path / "config")
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(plugins)
    env = qgis_env(config, tmp_path / "no_plugin_path")
    env.pop("QGIS_PLUGINPATH")
    proc = run_qgis_process(["plugins"], env)
    assert proc.returncode == 0, proc.stderr
    assert "arctic_assist" in _loaded_plugins(proc.stdout), proc.stdout + proc.stderr
    proc = run_qgis_process(["list"], env)
    assert proc.returncode == 0, proc.stderr
    for alg in ALGORITHMS:
        assert alg in proc.stdout
