"""retrain_model through qgis_process: bad input gives one message and a non-zero exit."""

from support import run_qgis_process


def test_data_folder_without_manifest(cli_env, tmp_path):
    out = tmp_path / "new.onnx"
    proc = run_qgis_process(["run", "arctic_assist:retrain_model", "--",
                             f"DATA={tmp_path}", f"OUTPUT={out}", "STEPS=1"], cli_env)
    assert proc.returncode != 0
    assert "no manifest.json" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists()


def test_python_without_torch_is_named(cli_env, tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    out = tmp_path / "new.onnx"
    proc = run_qgis_process(["run", "arctic_assist:retrain_model", "--", f"DATA={tmp_path}",
                             f"OUTPUT={out}", "PYTHON=/bin/false"], cli_env)
    assert proc.returncode != 0
    assert "cannot import torch" in proc.stdout + proc.stderr
    assert not out.exists()
