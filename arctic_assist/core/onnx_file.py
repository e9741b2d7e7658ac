"""What the plugin reads of an ONNX file, without the ``onnx`` package (issue 14).

Inference needs onnxruntime and numpy only. ONNX files are protocol buffers; the few
fields read before a session exists (metadata, default-domain opset, graph inputs and
outputs, initializer names) are decoded here from the protobuf wire format, field numbers
as in ``onnx/onnx.proto`` (ModelProto: graph 7, opset_import 8, metadata_props 14;
GraphProto: initializer 5, input 11, output 12; ValueInfoProto: name 1, type 2; TypeProto:
tensor_type 1; TypeProto.Tensor: shape 2; TensorShapeProto: dim 1; Dimension: dim_value 1,
dim_param 2). Everything else (nodes, weights) is skipped by its length, so reading a model
costs one read of the file and no session. External data is never touched.

:func:`probe_model_bytes` encodes the tiny Identity model that
:func:`~arctic_assist.core.onnx_model.max_supported_opset` hands to onnxruntime.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed protocol buffer."""


@dataclass
class Dim:
    value: int | None = None  # dim_value, when that is the one set
    param: str | None = None  # dim_param, when that is the one set


@dataclass
class ValueInfo:
    name: str
    has_shape: bool = False  # TypeProto.Tensor.shape present (rank known)
    dims: list[Dim] = field(default_factory=list)


@dataclass
class OnnxFile:
    """The parts of a ModelProto the plugin needs before it creates a session."""

    ir_version: int | None = None
    opset_import: dict[str, int] = field(default_factory=dict)  # domain -> version
    metadata_props: dict[str, str] = field(default_factory=dict)
    inputs: list[ValueInfo] = field(default_factory=list)
    outputs: list[ValueInfo] = field(default_factory=list)
    initializers: set[str] = field(default_factory=set)
    has_graph: bool = False

    @property
    def default_opset(self) -> int | None:
        for domain in ("", "ai.onnx"):
            if domain in self.opset_import:
                return self.opset_import[domain]
        return None


# ---------------------------------------------------------------- decoding
def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise OnnxFormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise OnnxFormatError("varint too long")
    if result >= 1 << 63:  # int64 two's complement
        result -= 1 << 64
    return result, pos


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of one message: ints for scalars, views for bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number <= 0:
            raise OnnxFormatError(f"invalid field number {number}")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == _LEN:
            length, pos = _varint(buf, pos)
            if length < 0 or pos + length > end:
                raise OnnxFormatError("length-delimited field runs past the end")
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if pos + size > end:
                raise OnnxFormatError("fixed-size field runs past the end")
            yield number, wire, int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        else:  # groups (3, 4) are not used by ONNX; 6 and 7 do not exist
            raise OnnxFormatError(f"unsupported wire type {wire}")


def _text(value: int | memoryview) -> str:
    if not isinstance(value, memoryview):
        raise OnnxFormatError("expected a string field")
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OnnxFormatError(f"invalid UTF-8 in a string field: {exc}") from exc


def _sub(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise OnnxFormatError("expected an embedded message")
    return value


def _int(value: int | memoryview) -> int:
    if isinstance(value, memoryview):
        raise OnnxFormatError("expected an integer field")
    return value


def _dim(buf: memoryview) -> Dim:
    dim = Dim()
    for number, _, value in _fields(buf):
        if number == 1:  # oneof value: the last one set wins, as protobuf does
            dim = Dim(value=_int(value))
        elif number == 2:
            dim = Dim(param=_text(value))
    return dim


def _value_info(buf: memoryview) -> ValueInfo:
    info = ValueInfo(name="")
    for number, _, value in _fields(buf):
        if number == 1:
            info.name = _text(value)
        elif number == 2:  # TypeProto
            for n2, _, v2 in _fields(_sub(value)):
                if n2 != 1:  # tensor_type only
                    continue
                for n3, _, v3 in _fields(_sub(v2)):
                    if n3 == 2:  # shape
                        info.has_shape = True
                        info.dims = [_dim(_sub(v4)) for n4, _, v4 in _fields(_sub(v3)) if n4 == 1]
    return info


def _tensor_name(buf: memoryview) -> str:
    name = ""
    for number, _, value in _fields(buf):
        if number == 8:
            name = _text(value)
    return name


def parse_model(data: bytes | bytearray | memoryview) -> OnnxFile:
    """Decode the parts of a serialized ModelProto listed in the module docstring."""
    buf = memoryview(data)
    out = OnnxFile()
    for number, _, value in _fields(buf):
        if number == 1:
            out.ir_version = _int(value)
        elif number == 7:
            out.has_graph = True
            for n2, _, v2 in _fields(_sub(value)):
                if n2 == 5:
                    out.initializers.add(_tensor_name(_sub(v2)))
                elif n2 == 11:
                    out.inputs.append(_value_info(_sub(v2)))
                elif n2 == 12:
                    out.outputs.append(_value_info(_sub(v2)))
        elif number == 8:
            domain, version = "", None
            for n2, _, v2 in _fields(_sub(value)):
                if n2 == 1:
                    domain = _text(v2)
                elif n2 == 2:
                    version = _int(v2)
            if version is not None:
                out.opset_import[domain] = version
        elif number == 14:
            key, text = "", ""
            for n2, _, v2 in _fields(_sub(value)):
                if n2 == 1:
                    key = _text(v2)
                elif n2 == 2:
                    text = _text(v2)
            out.metadata_props[key] = text
    return out


def read_model_file(path: str) -> OnnxFile:
    """:func:`parse_model` of the file at ``path`` (OSError / OnnxFormatError on failure)."""
    with open(path, "rb") as f:
        return parse_model(f.read())


# ---------------------------------------------------------------- encoding (the probe)
def _enc_varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_int(number: int, n: int) -> bytes:
    return _enc_varint(number << 3 | _VARINT) + _enc_varint(n)


def _enc_len(number: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _enc_varint(number << 3 | _LEN) + _enc_varint(len(payload)) + payload


def _enc_float_vector(name: str) -> bytes:
    """ValueInfoProto: ``name``, a float tensor of shape [1]."""
    dim = _enc_len(1, _enc_int(1, 1))  # TensorShapeProto.dim
    tensor = _enc_int(1, 1) + _enc_len(2, dim)  # elem_type FLOAT, shape
    return _enc_len(1, name) + _enc_len(2, _enc_len(1, tensor))


def probe_model_bytes(opset: int, ir_version: int = 8) -> bytes:
    """A serialized one-node model ``y = Identity(x)`` stamped with default-domain ``opset``."""
    node = _enc_len(1, "x") + _enc_len(2, "y") + _enc_len(4, "Identity")
    graph = (
        _enc_len(1, node)
        + _enc_len(2, "probe")
        + _enc_len(11, _enc_float_vector("x"))
        + _enc_len(12, _enc_float_vector("y"))
    )
    opset_id = _enc_len(1, "") + _enc_int(2, opset)
    return _enc_int(1, ir_version) + _enc_len(7, graph) + _enc_len(8, opset_id)
