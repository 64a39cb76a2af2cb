"""Make sure a .tflite file is whole before any interpreter sees its bytes.

Two checks, both pure Python (the interpreter's C++ code trusts the file; a damaged one can abort the process):

* **Content digest.** ``edgeclf export`` stores the sha256 of the finished file in ``Model.metadata`` under
  :data:`DIGEST_NAME`: a 32-byte buffer, hashed as if absent (the file's bytes before it, then after it). Any changed
  byte anywhere (weights, graph, metadata, the appended zip) fails the check. A file that says it was exported by
  edgeclf but has no digest is refused too; models from other converters have none and are only structure-checked.
* **Structure.** Every table, vector and index the interpreter follows (operator codes, subgraphs, tensors with their
  shapes, buffers and quantization, operators with their inputs and outputs) must lie inside the file and refer to
  things that exist, and a constant tensor's data must be exactly as long as its shape and type say.

Field numbers follow TensorFlow Lite's ``schema.fbs``.
"""

from __future__ import annotations

import hashlib
import math

from edgeclf.contracts import MODEL_CONTRACT_FILES, MODEL_CONTRACT_FORMAT
from edgeclf.errors import ModelError

from .flatbuffer import FlatbufferError, Table, root

DIGEST_NAME = "edgeclf_sha256"
DIGEST_SIZE = 32
EDGECLF_MARKERS = (f'"format": "{MODEL_CONTRACT_FORMAT.split("/")[0]}/'.encode(),  # what every edgeclf export carries
                   *(name.encode() for name in MODEL_CONTRACT_FILES))
# TensorType -> bytes per element (types whose data is not a plain array are not size-checked)
ITEM_SIZES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}
ZERO_POINT_RANGES = {9: (-128, 127), 3: (0, 255), 7: (-32768, 32767), 16: (0, 65535)}  # INT8, UINT8, INT16, UINT16
MAX_TENSOR_ELEMENTS = 1 << 31
CORRUPT_HINT = "export or copy it again"


def digest_span(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the digest bytes inside ``data``, or None when the model carries no digest."""
    model = root(data)
    buffers = model.tables(4)
    for entry in model.tables(6):  # Model.metadata: [Metadata{name:string, buffer:uint}]
        if entry.string(0) == DIGEST_NAME:
            index = entry.uint(1)
            if index >= len(buffers):
                raise FlatbufferError("digest buffer index out of range")
            start, n = buffers[index].vector(0, 1)
            if n != DIGEST_SIZE:
                raise FlatbufferError("digest of the wrong size")
            return start, start + n
    return None


def content_digest(data: bytes, span: tuple[int, int]) -> bytes:
    """sha256 of ``data`` without the bytes in ``span`` (where the digest itself is stored)."""
    h = hashlib.sha256()
    h.update(memoryview(data)[:span[0]])
    h.update(memoryview(data)[span[1]:])
    return h.digest()


def check_model_bytes(data: bytes, name) -> bool:
    """Raise a one-line :class:`ModelError` unless ``data`` is a whole, unmodified model; True if it had a digest."""
    try:
        span = digest_span(data)
        if span is not None:
            if content_digest(data, span) != bytes(data[span[0]:span[1]]):
                raise ModelError(f"{name}: corrupt or modified model: its content digest does not match",
                                 CORRUPT_HINT)
        elif any(marker in data for marker in EDGECLF_MARKERS):
            raise ModelError(f"{name}: corrupt or modified model: exported by edgeclf, but its content digest is "
                             "missing", CORRUPT_HINT)
        check_structure(data)
    except (FlatbufferError, OverflowError):
        raise ModelError(f"{name}: truncated or corrupt TFLite model (an offset or size points outside the file "
                         "or at nothing)", CORRUPT_HINT) from None
    return span is not None


def check_structure(data: bytes) -> None:
    """Walk the parts of the model the interpreter reads; raise FlatbufferError at the first inconsistency."""
    model = root(data)
    codes = model.tables(1)
    for code in codes:
        _text(code, 1)  # custom_code
    buffers = model.tables(4)
    sizes = [_buffer_size(buf, len(data)) for buf in buffers]
    subgraphs = model.tables(2)
    if not subgraphs:
        raise FlatbufferError("no subgraphs")
    for subgraph in subgraphs:
        _check_subgraph(subgraph, len(codes), sizes)
    for entry in model.tables(6):
        _text(entry, 0)
        _index(entry.uint(1), len(buffers), "metadata buffer")
    for index in model.numbers(5, "i"):  # metadata_buffer
        _index(index, len(buffers), "metadata buffer")


def _buffer_size(buf: Table, file_size: int) -> int:
    _, n = buf.vector(0, 1)
    offset, size = buf.uint(1, 8), buf.uint(2, 8)
    if offset > 1:  # large models keep weights after the flatbuffer
        if offset + size > file_size:
            raise FlatbufferError("buffer outside the file")
        return size
    return n


def _check_subgraph(subgraph: Table, n_codes: int, buffer_sizes: list[int]) -> None:
    tensors = subgraph.tables(0)
    for tensor in tensors:
        _check_tensor(tensor, buffer_sizes)
    for field in (1, 2):  # inputs, outputs
        for index in subgraph.numbers(field, "i"):
            _index(index, len(tensors), "subgraph tensor")
    for op in subgraph.tables(3):
        _index(op.uint(0), n_codes, "operator code")
        for field in (1, 2, 8):  # inputs, outputs, intermediates (-1: optional input left out)
            for index in op.numbers(field, "i"):
                if index != -1:
                    _index(index, len(tensors), "operator tensor")
        op.union(3)  # builtin_options
        op.vector(5, 1)  # custom_options
    _text(subgraph, 4)


def _check_tensor(tensor: Table, buffer_sizes: list[int]) -> None:
    shape = tensor.numbers(0, "i")
    if any(d < -1 for d in shape):
        raise FlatbufferError("negative tensor dimension")
    kind, buffer = tensor.uint(1, 1), tensor.uint(2)
    _index(buffer, len(buffer_sizes), "tensor buffer")
    _text(tensor, 3)  # name: the interpreter hands it to Python as UTF-8
    quant = tensor.table(4)
    if quant is not None:
        _check_quantization(quant, kind, shape)
    tensor.numbers(7, "i")  # shape_signature
    size = buffer_sizes[buffer]
    if size and not tensor.has(6) and kind in ITEM_SIZES and all(d >= 0 for d in shape):
        elements = math.prod(shape)
        if elements > MAX_TENSOR_ELEMENTS or elements * ITEM_SIZES[kind] != size:
            raise FlatbufferError("constant tensor data does not match its shape")


def _check_quantization(quant: Table, kind: int, shape: tuple) -> None:
    """Scales finite and non-negative, zero points inside the tensor type's range, one (scale, zero point) per
    channel of the quantized dimension: the kernels index and divide by these without checking."""
    quant.numbers(0, "f"), quant.numbers(1, "f"), quant.union(4)  # min, max, details
    scale, zero_point = quant.numbers(2, "f"), quant.numbers(3, "q")
    if any(not (math.isfinite(s) and s >= 0) for s in scale):
        raise FlatbufferError("quantization scale not a finite positive number")
    low, high = ZERO_POINT_RANGES.get(kind, (-(1 << 63), (1 << 63) - 1))
    if any(not low <= z <= high for z in zero_point):
        raise FlatbufferError("quantization zero point outside the tensor type's range")
    if len(scale) > 1 or len(zero_point) > 1:
        axis = quant.signed(6)
        if not 0 <= axis < len(shape) or len(scale) != shape[axis] or len(zero_point) not in (1, len(scale)):
            raise FlatbufferError("per-channel quantization does not match the tensor's shape")


def _text(table: Table, field: int) -> str:
    try:
        return (table.bytes(field) or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise FlatbufferError("a name is not UTF-8 text") from None


def _index(index: int, count: int, what: str) -> None:
    if not 0 <= index < count:
        raise FlatbufferError(f"{what} index {index} out of range ({count})")
