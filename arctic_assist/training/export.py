"""ONNX export with the model contract of :mod:`arctic_assist.core.spec`, and a parity check.

``export_onnx`` validates the spec's JSON document with the plugin's own validator before
anything is written, exports with the TorchScript-based exporter (``dynamo=False``, opset
17), stores ``spec.to_json()`` under the metadata key ``METADATA_KEY``, runs
``onnx.checker`` and writes the file atomically (temporary name, then rename).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import tempfile
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..core.onnx_model import read_model_spec as read_spec  # noqa: F401 - the one reader
from ..core.spec import EXPORT_OPSET, METADATA_KEY, ModelSpec, validate_metadata


def code_version(root: str | Path | None = None) -> str:
    """``version=`` of metadata.txt, plus ``+g<commit>`` (``.dirty`` for uncommitted changes)
    when the code runs from a git checkout, so an exported model names the exact code."""
    here = Path(root) if root else Path(__file__).resolve().parents[2]
    version = "unknown"
    for candidate in (
        here / "metadata.txt",
        here / "arctic_assist" / "metadata.txt",
        Path(__file__).resolve().parents[1] / "metadata.txt",
    ):
        if candidate.is_file():
            for line in candidate.read_text(encoding="utf-8").splitlines():
                if line.strip().startswith("version="):
                    version = line.split("=", 1)[1].strip()
                    break
            break
    if (here / ".git").exists():
        import subprocess

        def git(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10
            )

        try:
            head = git("rev-parse", "--short=10", "HEAD")
            if head.returncode == 0 and head.stdout.strip():
                dirty = git("diff", "--quiet", "HEAD", "--", "arctic_assist").returncode != 0
                version += f"+g{head.stdout.strip()}" + (".dirty" if dirty else "")
        except (OSError, subprocess.SubprocessError):
            pass
    return version


def training_command() -> str:
    """The command line that is training (for the exported model's provenance)."""
    import shlex
    import sys

    argv = list(sys.argv)
    if argv and argv[0].endswith(".py"):
        script = Path(argv[0]).resolve()
        try:  # a module of this package run with -m: name it as the user typed it
            parts = script.relative_to(Path(__file__).resolve().parents[1]).with_suffix("").parts
            parts = ("arctic_assist", *parts)
            if parts[-1] == "__main__":
                parts = parts[:-1]
            argv[0] = "python -m " + ".".join(parts)
        except ValueError:
            argv[0] = "python " + argv[0]
    return " ".join(shlex.quote(a) if i else a for i, a in enumerate(argv))


def export_onnx(
    module: torch.nn.Module,
    example: torch.Tensor,
    spec: ModelSpec,
    path: str | Path,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    opset: int = EXPORT_OPSET,
) -> Path:
    """Export ``module`` (called on ``example``) to ``path`` with the metadata of ``spec``.

    Defaults: input name ``spec.input_name``, output names from ``spec.outputs`` and
    dynamic axes batch (0) for every input/output. Returns the final path. Raises
    :class:`arctic_assist.core.spec.ModelSpecError` if the spec does not validate.
    """
    import onnx

    if spec.opset is None or spec.opset != opset:
        spec = dataclasses.replace(spec, opset=int(opset))
    doc = json.loads(spec.to_json())
    validate_metadata(doc)  # the plugin's own validator: refuse to write a bad model
    input_names = list(input_names or [spec.input_name])
    output_names = list(output_names or [o.name for o in spec.outputs])
    if dynamic_axes is None:
        dynamic_axes = {n: {0: "N"} for n in input_names + output_names}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = module.training
    module.eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                (example,),
                buf,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dict(dynamic_axes),
                opset_version=int(opset),
                dynamo=False,
                # keep every weight a named initializer (warm start from the .onnx);
                # onnxruntime folds the constants itself when it loads the model
                do_constant_folding=False,
            )
    finally:
        module.train(was_training)
    model = onnx.load_from_string(buf.getvalue())
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = spec.to_json()
    model.producer_name = "arctic_assist.training"
    onnx.checker.check_model(model)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600: a model is for everyone to read
        onnx.save(model, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def onnx_session(path: str | Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def parity_check(
    module: torch.nn.Module, onnx_path: str | Path, example: torch.Tensor, atol: float = 1e-4
) -> float:
    """Max |ONNX Runtime (CPU) - PyTorch| over all outputs; raises AssertionError > atol."""
    sess = onnx_session(onnx_path)
    feed = {sess.get_inputs()[0].name: example.detach().cpu().numpy()}
    got = sess.run(None, feed)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        ref = module(example)
    module.train(was_training)
    if isinstance(ref, torch.Tensor):
        ref = (ref,)
    worst = 0.0
    for a, b in zip(got, ref):
        b = b.detach().float().cpu().numpy()
        if a.shape != b.shape:
            raise AssertionError(f"ONNX output shape {a.shape} != PyTorch {b.shape}")
        worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))))
    if worst > atol:
        raise AssertionError(f"ONNX Runtime and PyTorch differ by {worst:.3g} > atol {atol}")
    return worst


def load_onnx_weights(
    target: torch.nn.Module, path: str | Path, optional: Sequence[str] = ()
) -> int:
    """Load the weights of an ONNX model this project exported into ``target``.

    The exporter keeps every parameter as an initializer named after it (prefixed by the
    export wrapper's attribute, e.g. ``net.``). Every parameter of ``target`` must be found
    with its shape, except those whose names start with one of ``optional`` (parts that are
    not exported, e.g. training-only heads); otherwise a :class:`ValueError` names them.
    Returns the number of tensors loaded.
    """
    import onnx
    from onnx import numpy_helper

    own = target.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for init in onnx.load(str(path)).graph.initializer:
        for key in (init.name, init.name.split(".", 1)[-1]):
            if key in own and key not in loaded:
                value = numpy_helper.to_array(init)
                if tuple(own[key].shape) == tuple(value.shape):
                    loaded[key] = torch.from_numpy(value.copy())
                break
    missing = [
        k
        for k in own
        if k not in loaded
        and not k.startswith(tuple(optional))
        and not k.endswith("num_batches_tracked")
    ]  # a counter, not exported
    if not loaded or missing:
        raise ValueError(
            f"base model {path} does not hold the weights of this network "
            f"({len(missing)} of {len(own)} tensors not found, e.g. {', '.join(missing[:3])}); "
            "give a model exported by Arctic Assist's training with the same architecture, "
            "or its .ckpt checkpoint"
        )
    target.load_state_dict(loaded, strict=False)
    return len(loaded)
