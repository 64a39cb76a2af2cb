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
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeclf.contracts import METADATA_IDENTIFIER, METADATA_NAME, MODEL_CONTRACT_FILES, TFLITE_IDENTIFIER, parse_labels
from edgeclf.errors import ModelError

from .flatbuffer import FlatbufferError, root
from .model_check import check_model_bytes
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
    contract: dict | None = None  # the edgeclf model contract packed among the associated files, if any


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


def check_tflite_bytes(data: bytes, name) -> bool:
    """Refuse anything that is not a whole, unmodified TFLite flatbuffer with one clear line, before an interpreter
    sees it (see :mod:`.model_check`: the digest of edgeclf exports, the structure of every model). True when the
    model carried a content digest."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(f"{name}: not a TensorFlow Lite model (no TFL3 identifier)",
                         "pass a .tflite file written by edgeclf export or the TFLite converter")
    return check_model_bytes(data, name)


def read_model_info(data: bytes, name="<model>") -> ModelInfo:
    """Labels, input image properties and normalisation from the embedded metadata (empty ModelInfo when absent)."""
    try:
        return _read_model_info(data, name)
    except (FlatbufferError, UnicodeDecodeError):
        raise ModelError(f"{name}: the model's metadata is corrupt (an offset points outside the file, or the labels "
                         "are not UTF-8 text)", "export or copy it again") from None


def _read_model_info(data: bytes, name) -> ModelInfo:
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
    info.contract = _contract(archive)
    if info.labels is None and isinstance(info.contract, dict) and isinstance(info.contract.get("labels"), list):
        info.labels = [str(x) for x in info.contract["labels"]]
    return info


def _contract(archive: dict[str, bytes]) -> dict | None:
    """The packed model contract (under its current name, or the one earlier exports used), None if absent or bad."""
    name = next((n for n in MODEL_CONTRACT_FILES if n in archive), None)
    try:
        return json.loads(archive[name].decode("utf-8")) if name else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _metadata_buffer(data: bytes) -> bytes | None:
    """The ModelMetadata flatbuffer stored in Model.buffers[Model.metadata["TFLITE_METADATA"].buffer], if any."""
    model = root(data)
    buffers = model.tables(4)
    for entry in model.tables(6):  # Model.metadata: [Metadata{name:string, buffer:uint}]
        if entry.string(0) == METADATA_NAME:
            index = entry.uint(1)
            if index >= len(buffers) or not buffers[index].has(0):
                return None
            return buffers[index].bytes(0)
    return None


def _parse_metadata(meta: bytes, info: ModelInfo) -> None:
    if len(meta) < 8 or meta[4:8] != METADATA_IDENTIFIER:
        return
    root_table = root(meta)  # ModelMetadata
    info.name, info.description, info.version = (root_table.string(i) for i in range(3))
    subgraphs = root_table.tables(3)
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
                info.color_space = COLOR_SPACES.get(props.signed(0, 1), "UNKNOWN")
                size = props.table(1)
                if size is not None:
                    w, h = size.uint(0), size.uint(1)
                    if w and h:
                        info.image_size = (w, h)
        for unit in tensor.tables(4):
            kind, options = unit.union(0)
            if kind == NORMALIZATION_OPTIONS and options is not None:
                info.mean, info.std = list(options.numbers(0, "f")), list(options.numbers(1, "f"))
    # Labels: the first TENSOR_AXIS_LABELS file of the output tensor, else of the subgraph or the model.
    candidates = [f for t in outputs[:1] for f in t.tables(6)] + sub.tables(4) + root_table.tables(6)
    for f in candidates:  # AssociatedFile: name, description, type, locale
        if f.signed(2, 1) == TENSOR_AXIS_LABELS and f.string(0):
            info.labels_file = f.string(0)
            break


def _associated_files(data: bytes) -> dict[str, bytes]:
    """Files packed in the zip appended to the flatbuffer (zip readers find the archive from its end)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, NotImplementedError):
        return {}
