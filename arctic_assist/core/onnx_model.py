"""The ONNX model wrapper: validated metadata, the opset check, an onnxruntime session.

No QGIS, no torch, no ``onnx`` package: the file is read by :mod:`.onnx_file`, so inference
needs onnxruntime and numpy only. ``OnnxModel.load(path, device)`` refuses, with one clear
message naming the file: a missing or corrupt file, a model without Arctic Assist (or
Deepness) metadata, a model whose default-domain opset is newer than the installed
onnxruntime runs, and (when ``task`` is given) a model made for another task. ``.provider``
is the execution provider that really runs (from ``session.get_providers()``, not from what
was asked for).
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import ModelError
from .onnx_file import OnnxFile, OnnxFormatError, probe_model_bytes, read_model_file
from .spec import ModelSpec, spec_from_metadata_props

LOG = logging.getLogger(__name__)

#: highest ai.onnx opset each onnxruntime release officially supports (fallback table when
#: the runtime cannot be probed); the probe in :func:`max_supported_opset` is authoritative
ORT_MAX_OPSET = {
    (1, 14): 18,
    (1, 15): 19,
    (1, 16): 19,
    (1, 17): 20,
    (1, 18): 21,
    (1, 19): 21,
    (1, 20): 21,
    (1, 21): 22,
    (1, 22): 22,
    (1, 23): 23,
    (1, 24): 23,
    (1, 25): 24,
    (1, 26): 24,
    (1, 27): 25,
    (1, 28): 25,
    (1, 29): 26,
    (1, 30): 26,
    (1, 31): 26,
}
DEVICES = ("auto", "cpu", "cuda")
#: times each candidate number of tiles per ``session.run`` is measured (interleaved, after
#: one call of each to warm it up) before a CPU run settles on the fastest (:class:`CallSizer`)
TUNE_ROUNDS = 3
#: onnxruntime's CPU threads claim a parallel loop's iterations in shrinking blocks instead
#: of equal fixed shares, so a thread preempted by the vectoriser's threads holds up less
DYNAMIC_BLOCK_BASE = "4"
TASK_WORDS = {
    "contour": "a calving-front (contour) model",
    "segmentation": "a segmentation (thaw-slump) model",
}


class CallSizer:
    """How many tiles one ``session.run`` gets on the CPU, chosen by timing the first calls.

    A larger batch is not always faster per tile on the CPU: it is for the bundled
    thaw-slump model (192 px), it is not for a 256 px U-Net whose activations for four tiles
    no longer fit the caches (README, "Tiles per `session.run`, chosen per run"). The
    stream's batch of ``batch`` tiles is run whole or in calls of 2 or 1 tiles: each size
    once to warm it up (onnxruntime plans its memory for each new shape), then ``rounds``
    times, interleaved, timed in ``session.run`` only; the size with the shortest median
    time per tile is kept.
    Batches shorter than ``batch`` (the end of a row of tiles) run whole and are not timed.
    """

    def __init__(self, batch: int, rounds: int | None = None) -> None:
        self.batch = max(1, int(batch))
        self.sizes = sorted({s for s in (self.batch, 2, 1) if s <= self.batch}, reverse=True)
        rounds = max(1, TUNE_ROUNDS if rounds is None else int(rounds))
        self.plan = [s for _ in range(rounds + 1) for s in self.sizes]
        self.per_tile: dict[int, list[float]] = {s: [] for s in self.sizes}
        self.done = 0
        #: the size chosen (None while measuring)
        self.chosen: int | None = self.sizes[0] if len(self.sizes) == 1 else None

    def size(self, n: int) -> int:
        """Tiles per call for a batch of ``n`` tiles."""
        if self.chosen is not None:
            return min(self.chosen, n)
        return self.plan[self.done] if n == self.batch else n

    def record(self, size: int, n: int, seconds: float) -> None:
        """A batch of ``n`` tiles ran in calls of ``size`` for ``seconds`` in onnxruntime."""
        if self.chosen is not None or n != self.batch or size != self.plan[self.done]:
            return
        if self.done >= len(self.sizes):  # the first round only warms up
            self.per_tile[size].append(seconds / n)
        self.done += 1
        if self.done == len(self.plan):
            self.chosen = min(self.sizes, key=lambda s: statistics.median(self.per_tile[s]))
            LOG.info("onnxruntime: %s", self.describe())

    def describe(self) -> str:
        if self.chosen is not None:
            text = f"{self.chosen} tile(s) per session.run"
        else:
            text = f"tiles per session.run not chosen (too few batches of {self.batch})"
        timed = [s for s in self.sizes if self.per_tile[s]]
        if timed:
            ms = " / ".join(f"{1000 * statistics.median(self.per_tile[s]):.1f}" for s in timed)
            sizes = " / ".join(str(s) for s in timed)
            text += f" (median ms per tile with {sizes} per call: {ms})"
        return text


def _session_options(threads: int | None, spinning: bool) -> Any:
    """onnxruntime's options for a model's session: quiet, ``threads`` intra-op threads
    (None: its default), dynamic blocks; idle threads that spin or that sleep
    (:meth:`OnnxModel.yield_cpu`)."""
    opts = _ort().SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.add_session_config_entry("session.dynamic_block_base", DYNAMIC_BLOCK_BASE)
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - the dependency check catches this first
        raise ModelError(
            "onnxruntime is not installed in this Python; install "
            "'onnxruntime' (or 'onnxruntime-gpu' for CUDA)"
        ) from exc
    return ort


@lru_cache(maxsize=1)
def max_supported_opset() -> int:
    """The highest default-domain opset the installed onnxruntime officially runs.

    Probed once: onnxruntime refuses a model stamped with opset 999 and names its limit
    ("... official support for domain ai.onnx is till opset 26"). Falls back to the table
    :data:`ORT_MAX_OPSET` (then to the newest entry) if the message cannot be parsed.
    """
    ort = _ort()
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        ort.InferenceSession(probe_model_bytes(999), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        m = re.search(r"ai\.onnx is till opset (\d+)", str(exc))
        if m:
            return int(m.group(1))
        LOG.debug("opset probe: unexpected onnxruntime message: %s", exc)
    major_minor = tuple(int(p) for p in re.findall(r"\d+", ort.__version__)[:2])
    return ORT_MAX_OPSET.get(major_minor, max(ORT_MAX_OPSET.values()))  # type: ignore[arg-type]


def _file_stamp(path: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of ``path``, None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class ModelInfo:
    """What is read from the ONNX file without running it."""

    spec: ModelSpec
    opset: int | None
    input_name: str
    output_names: list[str]
    props: dict[str, str] = field(default_factory=dict)


def _read_onnx(path: str) -> OnnxFile:
    if not os.path.isfile(path):
        raise ModelError(f"model file not found: {path}")
    try:
        # metadata only, without the onnx package: weights are skipped, external data unread
        return read_model_file(path)
    except (OnnxFormatError, OSError) as exc:
        raise ModelError(
            f"{path} is not a valid ONNX model (the file is corrupt or not ONNX: {exc}). "
            "Export it again or download it again."
        ) from exc


def read_model_info(path: str) -> ModelInfo:
    """Parse and validate the metadata of ``path`` (cheap: no session, no weights)."""
    path = str(path)
    model = _read_onnx(path)
    inputs = [i for i in model.inputs if i.name not in model.initializers]
    if not inputs or not model.outputs:
        raise ModelError(f"{path} is not a usable ONNX model: it has no graph inputs/outputs")
    first = inputs[0]
    dims = first.dims
    rank = len(dims) if first.has_shape else None
    n_inputs = None
    input_size = None
    if len(dims) == 4:
        if dims[1].value is not None:
            n_inputs = int(dims[1].value)
        fixed = [int(d.value) for d in dims[2:] if d.value is not None and d.value > 0]
        if len(fixed) == 2:  # a fixed spatial input size wins over the metadata's tile
            if fixed[0] != fixed[1]:
                raise ModelError(
                    f"{path}: the model's input is fixed to {fixed[0]} x {fixed[1]} px; "
                    "Arctic Assist runs square tiles only (export the model with a square "
                    "or dynamic input size)"
                )
            input_size = fixed[0]
    props = dict(model.metadata_props)
    output_names = [o.name for o in model.outputs]
    spec = spec_from_metadata_props(
        props,
        n_inputs=n_inputs,
        input_name=first.name,
        output_names=output_names,
        path=path,
        input_size=input_size,
    )
    # the graph must agree with its metadata, or onnxruntime's own error reaches the user
    if rank is not None and rank != 4:
        raise ModelError(
            f"{path}: the graph's input '{first.name}' has {rank} dimension(s), but Arctic "
            "Assist models take N x C x H x W (4): the file's metadata does not describe its "
            "graph; export the model again."
        )
    if n_inputs is not None and n_inputs != len(spec.bands):
        raise ModelError(
            f"{path}: the graph's input takes {n_inputs} channel(s), but its metadata lists "
            f"{len(spec.bands)} band(s) ({', '.join(spec.bands)}): the file's metadata does "
            "not describe its graph; export the model again."
        )
    return ModelInfo(
        spec=spec,
        opset=model.default_opset,
        input_name=first.name,
        output_names=output_names,
        props=props,
    )


def read_model_spec(path: str) -> ModelSpec:
    """The validated :class:`ModelSpec` of an ONNX model, without creating a session."""
    return read_model_info(path).spec


def check_opset(path: str, opset: int | None) -> None:
    """Refuse a model whose default-domain opset the installed onnxruntime cannot run."""
    if opset is None:
        return
    limit = max_supported_opset()
    if opset > limit:
        ort = _ort()
        raise ModelError(
            f"{path} needs ONNX opset {opset}, but the installed onnxruntime "
            f"{ort.__version__} runs models up to opset {limit}. Export the model with "
            f"opset 17 (Arctic Assist's exporter does) or update onnxruntime."
        )


def check_task(path: str, spec: ModelSpec, task: str, tool: str) -> None:
    """Refuse a model made for another task, saying what it is and what is needed."""
    if spec.task != task:
        what = TASK_WORDS.get(spec.task, f"a '{spec.task}' model")
        need = "a segmentation model" if task == "segmentation" else "a contour (COBRA) model"
        raise ModelError(f"{os.path.basename(path)} is {what}; {tool} needs {need}.")


def _softmax_last(x: np.ndarray) -> np.ndarray:
    """Probability of the last class of softmax over axis 1 (N x K x H x W -> N x 1 x H x W)."""
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e[:, -1:] / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float32)
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


class OnnxModel:
    """An ONNX model with its validated spec and an onnxruntime session.

    Attributes: ``path``, ``spec``, ``session``, ``provider`` (the provider that really
    runs), ``input_name``, ``output_names``, ``opset``, and ``inference_seconds`` (the time
    spent inside ``session.run`` since the last :meth:`reset_timer`).
    """

    def __init__(
        self,
        path: str,
        spec: ModelSpec,
        session: Any,
        opset: int | None,
        input_name: str,
        output_names: list[str],
    ) -> None:
        self.path = path
        self.spec = spec
        self.session = session
        self.opset = opset
        self.input_name = input_name
        self.output_names = output_names
        self.provider: str = session.get_providers()[0]
        batch_dim = session.get_inputs()[0].shape[0] if session.get_inputs()[0].shape else None
        #: a batch size fixed in the graph (Deepness's model zoo exports batch 1), else None
        self.fixed_batch: int | None = (
            batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        )
        self.inference_seconds = 0.0
        self.calls = 0
        #: chooses the tiles per call on the CPU once :meth:`tune_calls` is called
        self.sizer: CallSizer | None = None
        #: the options of a CPU session whose idle threads sleep (see :meth:`yield_cpu`);
        #: None on other providers
        self._yielding_options: Any = None
        self._stamp: tuple[int, int] | None = None  # the file's size and mtime at loading
        self.yielding = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls,
        path: str,
        device: str = "auto",
        task: str | None = None,
        tool: str = "this tool",
        threads: int | None = None,
    ) -> OnnxModel:
        """Validate ``path`` and create the session on ``device`` (auto | cpu | cuda).

        ``task``: refuse a model of another task (e.g. ``"segmentation"``, with ``tool`` the
        algorithm named in the message). ``device="cuda"`` without a working CUDA provider
        raises :class:`ModelError`; ``auto`` falls back to the CPU (and says so in the log).
        """
        path = str(path)
        device = (device or "auto").lower()
        if device == "gpu":
            device = "cuda"
        if device not in DEVICES:
            raise ModelError(f"device must be one of {', '.join(DEVICES)}; got '{device}'")
        info = read_model_info(path)
        check_opset(path, info.opset)
        if task is not None:
            check_task(path, info.spec, task, tool)
        spec = info.spec
        if spec.input_name != info.input_name and spec.source_format != "deepness":
            LOG.warning(
                "%s: metadata input name '%s' differs from the graph's '%s'; using the graph's",
                path,
                spec.input_name,
                info.input_name,
            )
        missing = [o.name for o in spec.outputs if o.name not in info.output_names]
        if missing and spec.source_format != "deepness":
            raise ModelError(
                f"{path}: output(s) {', '.join(missing)} named in the metadata "
                f"are not outputs of the graph ({', '.join(info.output_names)})"
            )

        ort = _ort()
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda"):
            if "CUDAExecutionProvider" in available:
                providers.insert(0, "CUDAExecutionProvider")
            elif device == "cuda":
                raise ModelError(
                    "device 'cuda' was requested but the installed onnxruntime has no CUDA "
                    "provider (install 'onnxruntime-gpu' with CUDA 12/13 and cuDNN 9), or "
                    "choose device 'auto' or 'cpu'."
                )
        opts = _session_options(threads, spinning=True)
        stamp = _file_stamp(path)
        try:
            if device == "auto" and len(providers) > 1:
                # a CUDA provider that cannot start prints errors; we report it ourselves
                ort.set_default_logger_severity(4)
            session = ort.InferenceSession(path, opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            text = str(exc)
            m = re.search(r"ai\.onnx is till opset (\d+)", text)
            if m:
                raise ModelError(
                    f"{path} needs ONNX opset {info.opset}, but the installed onnxruntime "
                    f"{ort.__version__} runs models up to opset {m.group(1)}. Export the "
                    "model with opset 17 or update onnxruntime."
                ) from exc
            raise ModelError(f"{path}: onnxruntime cannot load the model ({text.strip()})") from exc
        finally:
            ort.set_default_logger_severity(2)
        running = session.get_providers()
        if device == "cuda" and running[0] != "CUDAExecutionProvider":
            raise ModelError(
                "device 'cuda' was requested but CUDA does not work in onnxruntime here "
                "(missing CUDA/cuDNN libraries or no GPU); choose device 'auto' or 'cpu'. "
                f"Providers that started: {', '.join(running)}."
            )
        if (
            device == "auto"
            and "CUDAExecutionProvider" in providers
            and running[0] != "CUDAExecutionProvider"
        ):
            LOG.info("CUDA is listed by onnxruntime but did not start; running on %s", running[0])
        model = cls(
            path,
            spec,
            session,
            info.opset,
            info.input_name,
            [o.name for o in session.get_outputs()],
        )
        if running[0] == "CPUExecutionProvider":
            model._yielding_options = _session_options(threads, spinning=False)
            model._stamp = stamp
        LOG.info(
            "loaded %s (%s %s, task %s, opset %s) on %s",
            path,
            spec.name,
            spec.version,
            spec.task,
            info.opset,
            model.provider,
        )
        return model

    # ------------------------------------------------------------------ inference
    def reset_timer(self) -> None:
        self.inference_seconds = 0.0
        self.calls = 0

    def yield_cpu(self) -> bool:
        """From now on, let onnxruntime's idle CPU threads sleep instead of spin.

        Its threads spin while they wait for the next parallel step: the fastest for
        inference alone (about 8 % on the bundled thaw-slump model), but they keep the
        cores from other work of the same run, such as a detection's vectoriser when a
        model proposes polygons everywhere (see ``io/detect.py``). The session is made
        again with ``session.intra_op.allow_spinning = 0`` (the old one released first, so
        memory does not double). True if it was switched now; False on other providers,
        if already done, or if the model file has changed since it was loaded.
        """
        if self._yielding_options is None or self.yielding:
            return False
        self.yielding = True  # tried once, whatever happens
        if _file_stamp(self.path) != self._stamp:  # replaced since: never mix two models
            LOG.info("%s changed since it was loaded: its threads keep spinning", self.path)
            return False
        self.session = None
        self.session = _ort().InferenceSession(
            self.path, self._yielding_options, providers=["CPUExecutionProvider"]
        )
        return True

    def run(self, batch: np.ndarray, output_names: list[str] | None = None) -> list[np.ndarray]:
        """Raw outputs of ``session.run`` (timed)."""
        t0 = time.perf_counter()
        outs = self.session.run(output_names, {self.input_name: batch})
        self.inference_seconds += time.perf_counter() - t0
        self.calls += 1
        return outs

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Segmentation probabilities N x 1 x H x W (float32) for a float32 NCHW batch.

        The first output named in the metadata is used; its ``activation`` (none, sigmoid,
        softmax) is applied. A multi-class (softmax) output gives the last class's
        probability, as Deepness models do for a foreground class. The tiles go to
        onnxruntime in calls of the graph's fixed batch size, of the size :meth:`tune_calls`
        chose, or all at once.
        """
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.fixed_batch is not None:  # the graph runs exactly fixed_batch tiles
            return self._predict_calls(batch, self.fixed_batch)
        sizer = self.sizer
        if sizer is None:
            return self._predict_call(batch)
        n = batch.shape[0]
        size = sizer.size(n)
        t0 = self.inference_seconds
        out = self._predict_calls(batch, size)
        sizer.record(size, n, self.inference_seconds - t0)
        return out

    def tune_calls(self, batch: int) -> bool:
        """From now on, choose how many of the ``batch`` tiles :meth:`predict` gets go into
        one ``session.run`` by timing the first calls (:class:`CallSizer`). CPU only, and
        not for a graph with a fixed batch size; True if tuning."""
        if self.provider != "CPUExecutionProvider" or self.fixed_batch is not None:
            return False
        self.sizer = CallSizer(batch)
        return True

    def _predict_calls(self, batch: np.ndarray, size: int) -> np.ndarray:
        """:meth:`_predict_call` on ``size`` tiles at a time (a graph with a fixed batch:
        the last call padded by repeating its last tile)."""
        n = batch.shape[0]
        if n == size or (n < size and self.fixed_batch is None):
            return self._predict_call(batch)
        parts = []
        for i in range(0, n, size):
            part = batch[i : i + size]
            if self.fixed_batch is not None and part.shape[0] < size:
                part = np.concatenate([part, np.repeat(part[-1:], size - part.shape[0], 0)])
            parts.append(self._predict_call(part))
        return np.concatenate(parts)[:n]

    def _predict_call(self, batch: np.ndarray) -> np.ndarray:
        """One ``session.run``: the probabilities of the metadata's first output."""
        out_spec = self.spec.outputs[0]
        name = out_spec.name if out_spec.name in self.output_names else self.output_names[0]
        (out,) = self.run(batch, [name])
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 3:
            out = out[:, None]
        if out.ndim != 4:
            raise ModelError(
                f"{self.path}: output '{name}' has shape {out.shape}; a "
                "segmentation model must output N x C x H x W"
            )
        activation = out_spec.activation
        if self.spec.source_format == "deepness" and out.shape[1] > 1:
            activation = "none"  # Deepness models output class probabilities
        if activation == "sigmoid":
            out = _sigmoid(out)
        elif activation == "softmax":
            return _softmax_last(out) if out.shape[1] > 1 else np.ones_like(out)
        if out.shape[1] > 1:
            out = out[:, -1:]
        return out

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.predict(batch)
