"""Read what a .tflite file says about itself, without any interpreter: the standard TFLite Model Metadata.

A model with metadata (what ``edgeclf export`` writes, and what MediaPipe Tasks / the Android Task Library read) is a
TFLite flatbuffer whose ``Model.metadata`` has an entry named ``TFLITE_METADATA`` pointing at a buffer holding a
``ModelMetadata`` flatbuffer (tflite-support's ``metadata_schema.fbs``), followed by a zip archive with the associated
files (``labels.txt``). We read the few fields the runtime needs with ``flatbuffers``' generic ``Table`` accessor
instead of depending on ``tflite-support``, which has no wheels for current Pythons and pulls in far more than a Pi
needs. Field numbers below follow ``schema.fbs`` (TFLite) and ``metadata_schema.fbs`` (tflite-support).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from flatbuffers import number_types as N
from flatbuffers.table import Table

from edgeclf.errors import ModelError

TFLITE_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
METADATA_NAME = "TFLITE_METADATA"
TENSOR_AXIS_LABELS = 2  # AssociatedFileType
IMAGE_PROPERTIES = 2  # ContentProperties union member
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}


@dataclass
class ModelInfo:
    """What the model file declares about itself (every field optional: models without metadata leave them empty)."""

    name: str = ""
    description: str = ""
    version: str = ""
    labels: list[str] | None = None
    labels_file: str = ""  # associated file the labels came from
    image_size: tuple[int, int] | None = None  # (width, height) from ImageProperties.default_size
    color_space: str = ""
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    has_metadata: bool = False
    associated_files: list[str] = field(default_factory=list)
    manifest: dict | None = None  # an edgeclf.json packed among the associated files, if any


def read_model_file(path: str | os.PathLike) -> bytes:
    """The bytes of a .tflite file, or a :class:`ModelError` naming the file (missing, empty, not a TFLite model)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model file not found", "check the path (export one with: edgeclf export RUN_DIR)")
    if path.is_dir():
        raise ModelError(f"{path}: is a directory, not a .tflite model", "pass the .tflite file inside it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file ({exc.strerror or exc})", "check its permissions") from None
    check_tflite_bytes(data, path)
    return data


def check_tflite_bytes(data: bytes, name) -> None:
    """Refuse anything that is not a whole TFLite flatbuffer with one clear line (the interpreter's own errors are
    multi-line C++ messages, and some truncations it would only notice at invoke time)."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{name}: not a TensorFlow Lite model (no TFL3 identifier)",
                         "pass a .tflite file written by edgeclf export or the TFLite converter")
    try:
        model = _root(data)
        buffers = model.tables(4)
        for buf in buffers:  # every constant buffer (weights) must lie inside the file
            if buf.has(0):
                end = buf.vector_start(0) + buf.vector_len(0)
                if end > len(data):
                    raise IndexError(end)
            offset, size = buf.scalar(1, N.Uint64Flags, 0), buf.scalar(2, N.Uint64Flags, 0)
            if offset > 1 and offset + size > len(data):  # large models keep weights after the flatbuffer
                raise IndexError(offset + size)
        if not model.tables(2):
            raise IndexError("no subgraphs")
    except (IndexError, struct.error, ValueError):
        raise ModelError(f"{name}: truncated or corrupt TFLite model (its data ends early or points outside the file)",
                         "copy or export the model again") from None


def read_model_info(data: bytes, name="<model>") -> ModelInfo:
    """Labels, input image properties and normalisation from the embedded metadata (empty ModelInfo when absent)."""
    info = ModelInfo()
    archive = _associated_files(data)
    info.associated_files = sorted(archive)
    metadata = _metadata_buffer(data)
    if metadata is not None:
        info.has_metadata = True
        _parse_metadata(metadata, info)
    if info.labels_file:
        if info.labels_file not in archive:
            raise ModelError(f"{name}: metadata names the labels file {info.labels_file!r} but it is not packed "
                             "in the model (truncated or repacked?)", "export the model again or pass --labels FILE")
        info.labels = parse_labels(archive[info.labels_file])
    if "edgeclf.json" in archive:
        try:
            info.manifest = json.loads(archive["edgeclf.json"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            info.manifest = None
    if info.labels is None and isinstance(info.manifest, dict) and isinstance(info.manifest.get("labels"), list):
        info.labels = [str(x) for x in info.manifest["labels"]]
    return info


def parse_labels(raw: bytes) -> list[str]:
    """labels.txt content: one class per line, blank lines ignored (the TFLite metadata convention)."""
    return [line.strip() for line in raw.decode("utf-8").splitlines() if line.strip()]


# --- flatbuffer access -------------------------------------------------------------------------------------------

class _T:
    """A flatbuffer table read by field number (vtable slot), with the bounds the generated code does not check."""

    __slots__ = ("t",)

    def __init__(self, buf, pos):
        if not 0 <= pos < len(buf):
            raise IndexError(pos)
        self.t = Table(buf, pos)

    def _off(self, i: int) -> int:
        return self.t.Offset(4 + 2 * i)

    def has(self, i: int) -> bool:
        return self._off(i) != 0

    def scalar(self, i: int, flags, default=0):
        o = self._off(i)
        return self.t.Get(flags, self.t.Pos + o) if o else default

    def string(self, i: int) -> str:
        o = self._off(i)
        return self.t.String(self.t.Pos + o).decode("utf-8", "replace") if o else ""

    def table(self, i: int) -> "_T | None":
        o = self._off(i)
        return _T(self.t.Bytes, self.t.Indirect(self.t.Pos + o)) if o else None

    def vector_len(self, i: int) -> int:
        o = self._off(i)
        return self.t.VectorLen(o) if o else 0

    def vector_start(self, i: int) -> int:
        return self.t.Vector(self._off(i))

    def tables(self, i: int) -> list["_T"]:
        n = self.vector_len(i)
        if not n:
            return []
        start = self.t.Vector(self._off(i))
        return [_T(self.t.Bytes, self.t.Indirect(start + 4 * k)) for k in range(n)]

    def floats(self, i: int) -> list[float]:
        n = self.vector_len(i)
        if not n:
            return []
        start = self.t.Vector(self._off(i))
        return list(struct.unpack_from(f"<{n}f", self.t.Bytes, start))

    def union(self, type_field: int) -> tuple[int, "_T | None"]:
        kind = self.scalar(type_field, N.Uint8Flags, 0)
        return kind, (self.table(type_field + 1) if kind else None)


def _root(data: bytes) -> _T:
    (pos,) = struct.unpack_from("<I", data, 0)
    return _T(data, pos)


def _metadata_buffer(data: bytes) -> bytes | None:
    """The ModelMetadata flatbuffer stored in Model.buffers[Model.metadata["TFLITE_METADATA"].buffer], if any."""
    model = _root(data)
    buffers = model.tables(4)
    for entry in model.tables(6):  # Model.metadata: [Metadata{name:string, buffer:uint}]
        if entry.string(0) == METADATA_NAME:
            index = entry.scalar(1, N.Uint32Flags, 0)
            if index >= len(buffers) or not buffers[index].has(0):
                return None
            start = buffers[index].vector_start(0)
            return bytes(data[start:start + buffers[index].vector_len(0)])
    return None


def _parse_metadata(meta: bytes, info: ModelInfo) -> None:
    if len(meta) < 8 or meta[4:8] != METADATA_IDENTIFIER:
        return
    root = _root(meta)  # ModelMetadata
    info.name, info.description, info.version = root.string(0), root.string(1), root.string(2)
    subgraphs = root.tables(3)
    if not subgraphs:
        return
    sub = subgraphs[0]  # SubGraphMetadata
    inputs, outputs = sub.tables(2), sub.tables(3)
    if inputs:
        tensor = inputs[0]  # TensorMetadata: name, description, dimension_names, content, process_units, ...
        content = tensor.table(3)
        if content is not None:
            kind, props = content.union(0)
            if kind == IMAGE_PROPERTIES and props is not None:
                info.color_space = COLOR_SPACES.get(props.scalar(0, N.Int8Flags, 0), "UNKNOWN")
                size = props.table(1)
                if size is not None:
                    w, h = size.scalar(0, N.Uint32Flags, 0), size.scalar(1, N.Uint32Flags, 0)
                    if w and h:
                        info.image_size = (w, h)
        for unit in tensor.tables(4):
            kind, options = unit.union(0)
            if kind == NORMALIZATION_OPTIONS and options is not None:
                info.mean, info.std = options.floats(0), options.floats(1)
    # Labels: the first TENSOR_AXIS_LABELS file of the output tensor, else of the subgraph or the model.
    candidates = [f for t in outputs[:1] for f in t.tables(6)] + sub.tables(4) + root.tables(6)
    for f in candidates:  # AssociatedFile: name, description, type, locale
        if f.scalar(2, N.Int8Flags, 0) == TENSOR_AXIS_LABELS and f.string(0):
            info.labels_file = f.string(0)
            break


def _associated_files(data: bytes) -> dict[str, bytes]:
    """Files packed in the zip appended to the flatbuffer (zip readers find the archive from its end)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, NotImplementedError):
        return {}
