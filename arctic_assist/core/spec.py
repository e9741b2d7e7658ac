"""The model contract: one versioned JSON document in the ONNX ``metadata_props``.

The exporter (``arctic_assist.training``) writes it and the plugin reads it through the
one validator below, :func:`validate_metadata`. Nothing here imports QGIS or torch.

The document lives under the metadata key :data:`METADATA_KEY` and looks like::

    {
      "schema": "arctic_assist.model", "schema_version": 1,
      "name": "rts_pixeldino_s2_bgrn", "version": "1.0.0",
      "task": "segmentation",                       # or "contour"
      "description": "...",
      "input": {
        "name": "image", "layout": "NCHW", "dtype": "uint16",
        "bands": ["B2", "B3", "B4", "B8"],
        "normalization": {"type": "pixeldino_logsigmoid", "scale": 0.005,
                          "gain": 2.5, "offset": 2.1},
        "nodata": {"value": 0, "fill": 0.0}
      },
      "pixel_size_m": 10.0,
      "tile": {"size": 192, "overlap": 48, "multiple_of": 16},
      "classes": ["background", "rts"],
      "threshold": 0.5,
      "outputs": [{"name": "rts_probability", "shape": ["N", 1, "H", "W"],
                   "activation": "none"}],
      "contour": null,                              # {"vertices": 64, "iterations": 4, ...}
      "opset": 17,
      "provenance": {"method": "pixeldino", "training_data": "...", "steps": 1000,
                     "metrics": {"iou": 0.4}, "created": "...", "code_version": "0.1.0"}
    }

Models exported for the Deepness plugin (the keys its code reads: ``model_type``,
``class_names``, ``resolution``, ``tile_size``, ``tiles_overlap``, ``seg_thresh``,
``standardization_mean``/``_std``, ...: ``processing/models/model_base.py``, checked against
PUTvision/qgis-plugin-deepness at f450c63; its docs say ``tiles_size``, its code reads
``tile_size``, :func:`from_deepness` reads both, the code's first; ``names`` is the old
``class_names``) are mapped onto the same :class:`ModelSpec`. A fixed spatial input size
in the graph wins over the metadata's tile size.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from collections.abc import Mapping

from .errors import ModelError

METADATA_KEY = "arctic_assist"
SCHEMA = "arctic_assist.model"
SCHEMA_VERSION = 1
TASKS = ("segmentation", "contour")
DTYPES = ("uint8", "uint16", "int16", "float32")
#: mask value for 'no label' in training data: ignored by the losses and the metrics
IGNORE = 255
#: the trainers' U-Net pools 4 times: its input sides are multiples of 16 (``tile.multiple_of``)
MULTIPLE_OF = 16
NORMALIZATIONS = ("none", "scale", "standardize", "pixeldino_logsigmoid")
ACTIVATIONS = ("none", "sigmoid", "softmax")
#: opset written by our exporter
EXPORT_OPSET = 17


class ModelSpecError(ModelError):
    """The model's metadata is missing or invalid; the message names the field."""


@dataclass(frozen=True)
class Normalization:
    """Exact preprocessing from raw band values to the model's float input.

    - ``none``: ``x``
    - ``scale``: ``x * scale + offset``
    - ``standardize``: ``(x * scale - mean[b]) / std[b]`` (Deepness: scale = 1/255)
    - ``pixeldino_logsigmoid``: ``round(clip(255 * sigmoid(gain * (log(1 + scale * x)
      - offset)), 0, 255)) / 255`` as the PixelDINO authors quantise Sentinel-2 DN.
    """

    type: str = "none"
    scale: float = 1.0
    offset: float = 0.0
    gain: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    quantize: bool = True


@dataclass(frozen=True)
class OutputSpec:
    name: str
    shape: tuple[Any, ...] = ()
    activation: str = "none"


@dataclass(frozen=True)
class ContourSpec:
    vertices: int = 64
    iterations: int = 4
    #: vertex coordinates are (x, y) in [-1, 1], grid_sample align_corners=True
    coordinates: str = "xy_normalized_align_corners"


@dataclass(frozen=True)
class ModelSpec:
    """Everything the plugin needs to run a model exactly as it was trained."""

    name: str
    version: str
    task: str
    bands: tuple[str, ...]
    dtype: str
    normalization: Normalization
    pixel_size_m: float | None
    tile_size: int
    tile_overlap: int
    classes: tuple[str, ...]
    threshold: float
    outputs: tuple[OutputSpec, ...]
    input_name: str = "image"
    nodata_value: float | None = None
    nodata_fill: float = 0.0
    multiple_of: int = 1
    contour: ContourSpec | None = None
    opset: int | None = None
    description: str = ""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    source_format: str = "arctic_assist"
    #: per-band median of the raw band values of the training scenes,
    #: ``input.statistics.median``: what scene adaptation matches (core/adapt.py)
    input_medians: tuple[float, ...] | None = None

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    def to_metadata(self) -> dict[str, Any]:
        """The JSON document of this spec (inverse of :func:`validate_metadata`)."""
        norm = asdict(self.normalization)
        norm["mean"] = list(norm["mean"])
        norm["std"] = list(norm["std"])
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "description": self.description,
            "input": {
                "name": self.input_name,
                "layout": "NCHW",
                "dtype": self.dtype,
                "bands": list(self.bands),
                "normalization": norm,
                "nodata": {"value": self.nodata_value, "fill": self.nodata_fill},
                **(
                    {"statistics": {"median": list(self.input_medians)}}
                    if self.input_medians
                    else {}
                ),
            },
            "pixel_size_m": self.pixel_size_m,
            "tile": {
                "size": self.tile_size,
                "overlap": self.tile_overlap,
                "multiple_of": self.multiple_of,
            },
            "classes": list(self.classes),
            "threshold": self.threshold,
            "outputs": [
                {"name": o.name, "shape": list(o.shape), "activation": o.activation}
                for o in self.outputs
            ],
            "contour": asdict(self.contour) if self.contour else None,
            "opset": self.opset,
            "provenance": dict(self.provenance),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_metadata(), sort_keys=True)

    def card(self) -> dict[str, Any]:
        """A short model card for dialogs and logs."""
        prov = dict(self.provenance)
        extra: dict[str, Any] = {}
        if self.task == "segmentation":  # detection's ADAPT (core/adapt.py)
            extra["scene adaptation"] = (
                "to its training scenes' band medians "
                + ", ".join(f"{b} {m:g}" for b, m in zip(self.bands, self.input_medians))
                if self.input_medians
                else "not available (no band medians in the model)"
            )
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "bands": ", ".join(self.bands),
            "pixel size (m)": self.pixel_size_m,
            "tile": f"{self.tile_size} px, overlap {self.tile_overlap} px",
            "method": prov.get("method", ""),
            "training data": prov.get("training_data", ""),
            **extra,
            "metrics": prov.get("metrics", {}),
            "created": prov.get("created", ""),
        }


# ----------------------------------------------------------------------------- helpers


#: upper bounds on sizes read from a model file (checked before anything is allocated)
MAX_TILE_SIZE = 4096
MAX_BANDS = 64
MAX_VERTICES = 4096
MAX_ITERATIONS = 64


def _get(
    doc: Mapping[str, Any],
    path: str,
    default: Any = ...,
) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            if default is ...:
                raise ModelSpecError(f"model metadata: required field '{path}' is missing")
            return default
        cur = cur[part]
    return cur


def _num(
    doc: Mapping[str, Any],
    path: str,
    default: Any = ...,
    *,
    positive: bool = False,
    integer: bool = False,
    allow_none: bool = False,
) -> Any:
    value = _get(doc, path, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelSpecError(f"model metadata: field '{path}' must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ModelSpecError(f"model metadata: field '{path}' must be an integer, got {value!r}")
    if positive and value <= 0:
        raise ModelSpecError(f"model metadata: field '{path}' must be positive, got {value!r}")
    return int(value) if integer else float(value)


def _choice(doc: Mapping[str, Any], path: str, choices: tuple[str, ...], default: Any = ...) -> str:
    value = _get(doc, path, default)
    if value not in choices:
        raise ModelSpecError(
            f"model metadata: field '{path}' must be one of {', '.join(choices)}; got {value!r}"
        )
    return value


def _str(doc: Mapping[str, Any], path: str, default: Any = ...) -> str:
    value = _get(doc, path, default)
    if not isinstance(value, str) or not value:
        raise ModelSpecError(f"model metadata: field '{path}' must be a non-empty string")
    return value


def _str_list(doc: Mapping[str, Any], path: str) -> tuple[str, ...]:
    value = _get(doc, path)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ModelSpecError(f"model metadata: field '{path}' must be a non-empty list of names")
    return tuple(value)


def parse_normalization(norm: Mapping[str, Any], n_bands: int) -> Normalization:
    """A validated :class:`Normalization` from a metadata-style ``input.normalization``
    object (e.g. a training-data manifest's ``normalization``); raises
    :class:`ModelSpecError` naming the field."""
    return _normalization({"input": {"normalization": dict(norm)}}, n_bands)


def _normalization(doc: Mapping[str, Any], n_bands: int) -> Normalization:
    path = "input.normalization"
    kind = _choice(doc, path + ".type", NORMALIZATIONS)
    if kind == "none":
        return Normalization("none")
    if kind == "scale":
        return Normalization(
            "scale", scale=_num(doc, path + ".scale"), offset=_num(doc, path + ".offset", 0.0)
        )
    if kind == "standardize":
        mean = _get(doc, path + ".mean")
        std = _get(doc, path + ".std")
        for name, vals in (("mean", mean), ("std", std)):
            if (
                not isinstance(vals, list)
                or len(vals) != n_bands
                or not all(isinstance(v, (int, float)) for v in vals)
            ):
                raise ModelSpecError(
                    f"model metadata: field '{path}.{name}' must list {n_bands} numbers "
                    f"(one per input band)"
                )
        if any(s <= 0 for s in std):
            raise ModelSpecError(f"model metadata: field '{path}.std' must be positive")
        return Normalization(
            "standardize",
            scale=_num(doc, path + ".scale", 1.0),
            mean=tuple(float(v) for v in mean),
            std=tuple(float(v) for v in std),
        )
    return Normalization(
        "pixeldino_logsigmoid",
        scale=_num(doc, path + ".scale", 0.005, positive=True),
        gain=_num(doc, path + ".gain", 2.5, positive=True),
        offset=_num(doc, path + ".offset", 2.1),
        quantize=bool(_get(doc, path + ".quantize", True)),
    )


def _input_medians(doc: Mapping[str, Any], n_bands: int) -> tuple[float, ...] | None:
    path = "input.statistics"
    if _get(doc, path, None) is None:
        return None
    vals = _get(doc, path + ".median")
    if (
        not isinstance(vals, list)
        or len(vals) != n_bands
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            for v in vals
        )
    ):
        raise ModelSpecError(
            f"model metadata: field '{path}.median' must list {n_bands} positive numbers "
            f"(one per input band)"
        )
    return tuple(float(v) for v in vals)


def validate_metadata(doc: Mapping[str, Any]) -> ModelSpec:
    """Validate our JSON document and build the :class:`ModelSpec` (one validator for all)."""
    if not isinstance(doc, Mapping):
        raise ModelSpecError("model metadata: the document must be a JSON object")
    if doc.get("schema") != SCHEMA:
        raise ModelSpecError(f"model metadata: field 'schema' must be '{SCHEMA}'")
    version = _num(doc, "schema_version", integer=True)
    if version > SCHEMA_VERSION:
        raise ModelSpecError(
            f"model metadata: field 'schema_version' is {version}, this plugin reads up to "
            f"{SCHEMA_VERSION}; update Arctic Assist"
        )
    task = _choice(doc, "task", TASKS)
    bands = _str_list(doc, "input.bands")
    classes = (
        _str_list(doc, "classes")
        if task == "segmentation"
        else tuple(_get(doc, "classes", ["front"]) or ["front"])
    )
    outputs_raw = _get(doc, "outputs")
    if not isinstance(outputs_raw, list) or not outputs_raw:
        raise ModelSpecError("model metadata: field 'outputs' must be a non-empty list")
    outputs = []
    for i, out in enumerate(outputs_raw):
        outputs.append(
            OutputSpec(
                name=_str(out, "name")
                if isinstance(out, Mapping)
                else _str({}, f"outputs[{i}].name"),
                shape=tuple(out.get("shape", ())),
                activation=_choice(out, "activation", ACTIVATIONS, "none"),
            )
        )
    if len(bands) > MAX_BANDS:
        raise ModelSpecError(
            f"model metadata: field 'input.bands' lists {len(bands)} bands; "
            f"at most {MAX_BANDS} are supported"
        )
    contour = None
    if task == "contour":
        contour = ContourSpec(
            vertices=_num(doc, "contour.vertices", positive=True, integer=True),
            iterations=_num(doc, "contour.iterations", positive=True, integer=True),
            coordinates=_choice(
                doc,
                "contour.coordinates",
                ("xy_normalized_align_corners",),
                "xy_normalized_align_corners",
            ),
        )
    tile_size = _num(doc, "tile.size", positive=True, integer=True)
    if tile_size > MAX_TILE_SIZE:  # sizes from a file are bounded before anything is allocated
        raise ModelSpecError(
            f"model metadata: field 'tile.size' is {tile_size} px; Arctic Assist runs tiles of "
            f"at most {MAX_TILE_SIZE} px (a larger tile would exhaust the memory)"
        )
    overlap = _num(doc, "tile.overlap", 0, integer=True)
    if not 0 <= overlap < tile_size:
        raise ModelSpecError(
            f"model metadata: field 'tile.overlap' must be in [0, tile.size); got {overlap}"
        )
    if contour is not None and (
        contour.vertices > MAX_VERTICES or contour.iterations > MAX_ITERATIONS
    ):
        raise ModelSpecError(
            f"model metadata: fields 'contour.vertices' ({contour.vertices}) and "
            f"'contour.iterations' ({contour.iterations}) must be at most {MAX_VERTICES} and "
            f"{MAX_ITERATIONS}"
        )
    if _num(doc, "tile.multiple_of", 1, positive=True, integer=True) > tile_size:
        raise ModelSpecError(
            f"model metadata: field 'tile.multiple_of' must be at most tile.size ({tile_size})"
        )
    threshold = _num(doc, "threshold", 0.5)
    if task == "segmentation" and not 0.0 < threshold < 1.0:
        raise ModelSpecError(
            f"model metadata: field 'threshold' must be in (0, 1); got {threshold}"
        )
    provenance = _get(doc, "provenance", {})
    if not isinstance(provenance, Mapping):
        raise ModelSpecError("model metadata: field 'provenance' must be an object")
    return ModelSpec(
        name=_str(doc, "name"),
        version=str(_get(doc, "version")),
        task=task,
        bands=bands,
        dtype=_choice(doc, "input.dtype", DTYPES),
        normalization=_normalization(doc, len(bands)),
        pixel_size_m=_num(doc, "pixel_size_m", None, positive=True, allow_none=True),
        tile_size=tile_size,
        tile_overlap=overlap,
        multiple_of=_num(doc, "tile.multiple_of", 1, positive=True, integer=True),
        classes=classes,
        threshold=threshold,
        outputs=tuple(outputs),
        input_name=_str(doc, "input.name", "image"),
        nodata_value=_num(doc, "input.nodata.value", None, allow_none=True),
        nodata_fill=_num(doc, "input.nodata.fill", 0.0),
        contour=contour,
        opset=_num(doc, "opset", None, integer=True, allow_none=True),
        description=str(_get(doc, "description", "")),
        provenance=dict(provenance),
        input_medians=_input_medians(doc, len(bands)),
    )


def _loads(value: str, key: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        try:  # Deepness examples sometimes store Python literals
            import ast

            return ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ModelSpecError(f"Deepness metadata: key '{key}' is not valid JSON") from exc


def from_deepness(
    props: Mapping[str, str],
    *,
    n_inputs: int,
    input_name: str,
    output_names: list[str],
    input_size: int | None = None,
) -> ModelSpec:
    """Map the Deepness plugin's metadata keys onto a :class:`ModelSpec`.

    Deepness feeds uint8 images divided by 255, then optionally standardised with
    ``standardization_mean``/``standardization_std``; ``resolution`` is cm per pixel and
    ``tiles_overlap`` a percentage of the tile size (``int(tile * pct / 100 * 2) // 2``
    pixels, as Deepness rounds it). The tile size is the graph's fixed input size
    (``input_size``) when it has one, else ``tile_size``, else ``tiles_size``, else 512.
    ``seg_small_segment`` (Deepness's median-filter size) is kept in the provenance.
    """
    model_type = _loads(props["model_type"], "model_type")
    if model_type != "Segmentor":
        raise ModelSpecError(
            f"Deepness metadata: model_type '{model_type}' is not supported; Arctic Assist "
            "runs Deepness models of type 'Segmentor'"
        )
    key = "class_names" if "class_names" in props else "names"
    class_names = _loads(props.get(key, "null"), key)
    if isinstance(class_names, list) and class_names and isinstance(class_names[0], Mapping):
        class_names = class_names[0]  # one dict per output: the first output is used
    if isinstance(class_names, Mapping):
        classes = tuple(str(class_names[k]) for k in sorted(class_names, key=lambda k: int(k)))
    else:
        classes = ("background", "object")
    resolution_cm = _loads(props["resolution"], "resolution") if "resolution" in props else None
    tile_key = "tile_size" if "tile_size" in props else "tiles_size"
    tile = int(input_size or _loads(props.get(tile_key, "512"), tile_key))
    overlap_pct = float(_loads(props.get("tiles_overlap", "15"), "tiles_overlap"))
    overlap = int(tile * overlap_pct / 100 * 2) // 2
    threshold = float(_loads(props.get("seg_thresh", "0.5"), "seg_thresh"))
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "name": "deepness_model",
        "version": "unknown",
        "task": "segmentation",
        "description": "Deepness model (metadata mapped by Arctic Assist)",
        "input": {
            "name": input_name,
            "dtype": "uint8",
            "bands": [f"band{i + 1}" for i in range(n_inputs)],
            "normalization": {"type": "scale", "scale": 1 / 255.0, "offset": 0.0},
        },
        "pixel_size_m": (float(resolution_cm) / 100.0) if resolution_cm else None,
        "tile": {"size": tile, "overlap": min(overlap, tile - 1)},
        "classes": list(classes),
        "threshold": threshold,
        "outputs": [{"name": n, "activation": "none"} for n in output_names],
    }
    if "standardization_mean" in props and "standardization_std" in props:
        doc["input"]["normalization"] = {
            "type": "standardize",
            "scale": 1 / 255.0,
            "mean": list(_loads(props["standardization_mean"], "standardization_mean")),
            "std": list(_loads(props["standardization_std"], "standardization_std")),
        }
    if "seg_small_segment" in props:
        doc["provenance"] = {
            "deepness_seg_small_segment": _loads(props["seg_small_segment"], "seg_small_segment")
        }
    spec = validate_metadata(doc)
    return ModelSpec(**{**spec.__dict__, "source_format": "deepness"})


def spec_from_metadata_props(
    props: Mapping[str, str],
    *,
    n_inputs: int | None = None,
    input_name: str = "image",
    output_names: list[str] | None = None,
    path: str = "model",
    input_size: int | None = None,
) -> ModelSpec:
    """Build the spec from an ONNX model's ``metadata_props`` (ours, else Deepness's).

    ``input_size``: the graph's fixed (square) spatial input size, if it has one; it wins
    over any tile size in the metadata (the model cannot run on another size).
    """
    if METADATA_KEY in props:
        try:
            doc = json.loads(props[METADATA_KEY])
        except ValueError as exc:
            raise ModelSpecError(
                f"{path}: metadata key '{METADATA_KEY}' is not valid JSON ({exc})"
            ) from exc
        spec = validate_metadata(doc)
        if input_size and input_size != spec.tile_size:
            spec = replace(
                spec,
                tile_size=int(input_size),
                tile_overlap=min(spec.tile_overlap, int(input_size) // 2),
            )
        return spec
    if "model_type" in props:
        return from_deepness(
            props,
            n_inputs=n_inputs or 3,
            input_name=input_name,
            output_names=output_names or ["output"],
            input_size=input_size,
        )
    raise ModelSpecError(
        f"{path} carries no Arctic Assist metadata (key '{METADATA_KEY}') and no Deepness "
        "metadata: it was not exported by arctic_assist.training. Export models with "
        "'python -m arctic_assist.training export' or add the metadata (see README, "
        "'Model contract')."
    )
