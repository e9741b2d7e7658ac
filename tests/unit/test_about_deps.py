import sys

from arctic_assist import about, deps


def test_version_comes_from_metadata_txt():
    text = (about.plugin_root() / "metadata.txt").read_text()
    assert f"version={about.version()}" in text
    assert about.metadata()["name"] == "Arctic Assist"
    assert about.metadata()["qgisminimumversion"] == "3.22"
    assert about.metadata()["hasprocessingprovider"] == "yes"


def test_assets_resolve_in_checkout():
    assert (about.asset_path("resources", "styles", "thaw_slumps.qml")).is_file()
    assert about.bundled_model("segmentation").name.endswith(".onnx")


def test_dependency_message_names_package_and_command():
    assert deps.dependency_message([]) is None
    msg = deps.dependency_message(["onnxruntime"])
    assert "onnxruntime" in msg and "pip install" in msg and sys.executable in msg


def _msg(missing, numpy_version, **kw):
    kw = {"executable": "/usr/bin/python3", "python": "3.13", "gdal_version": "3.10.3", **kw}
    return deps.build_dependency_message(missing, numpy_version=numpy_version, **kw)


def test_message_never_changes_the_numpy_qgis_has():
    """QGIS 3.40 on Debian 13 (numpy 2.2, PEP 668) and QGIS 3.22 on Ubuntu 22.04 (numpy 1.21):
    only onnxruntime is installed, with numpy pinned to the version already there."""
    debian13 = _msg(["onnxruntime"], "2.2.4", externally_managed=True)
    assert "numpy<2" not in debian13
    assert (
        "/usr/bin/python3 -m pip install --user --break-system-packages onnxruntime-gpu "
        '"numpy==2.2.4"'
    ) in debian13
    assert "package(s) onnxruntime in QGIS's Python (/usr/bin/python3, Python 3.13)" in debian13
    ubuntu = _msg(["onnxruntime"], "1.21.5", python="3.10", gdal_version="3.4.1")
    assert "numpy<2" not in ubuntu and "--break-system-packages" not in ubuntu
    assert '-m pip install --user onnxruntime-gpu "numpy==1.21.5"' in ubuntu
    in_venv = _msg(["onnxruntime"], "2.2.4", venv=True, externally_managed=True)
    assert "--user" not in in_venv and "--break-system-packages" not in in_venv
    assert _msg([], "2.2.4") is None


def test_message_suggests_numpy_only_when_it_is_missing():
    assert '--user "numpy<2" onnxruntime-gpu' in _msg(
        ["numpy", "onnxruntime"], None, gdal_version="3.4.1"
    )
    new_gdal = _msg(["numpy"], None, gdal_version="3.10.3")
    assert "install --user numpy " in new_gdal and "numpy<2" not in new_gdal
    assert "onnxruntime-gpu" not in new_gdal


def test_live_message_keeps_the_installed_numpy(monkeypatch):
    import numpy

    monkeypatch.setattr(deps, "missing_dependencies", lambda: ["onnxruntime"])
    msg = deps.dependency_message()
    assert f'"numpy=={numpy.__version__}"' in msg and "numpy<2" not in msg


def test_importing_the_core_does_not_import_qgis_or_torch():
    import subprocess

    code = (
        "import sys, arctic_assist, arctic_assist.core.spec, arctic_assist.about; "
        "bad=[m for m in ('qgis','torch') if m in sys.modules]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
