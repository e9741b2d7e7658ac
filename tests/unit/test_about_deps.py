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


def test_importing_the_core_does_not_import_qgis_or_torch():
    import subprocess

    code = ("import sys, arctic_assist, arctic_assist.core.spec, arctic_assist.about; "
            "bad=[m for m in ('qgis','torch') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
