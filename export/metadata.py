"""Make an exported .tflite self-describing: standard TFLite Model Metadata, labels and edgeclf's input contract inside.

What is written (the layout MediaPipe Tasks' ImageClassifier and the Android Task Library read)::

    model.tflite = TFLite flatbuffer ("TFL3")  +  zip archive appended at the end (stored, uncompressed)
      Model.metadata["TFLITE_METADATA"] -> Model.buffers[i] = ModelMetadata flatbuffer ("M001", metadata_schema.fbs)
        name, description, version ("edgeclf <version>"), author, license, min_parser_version "1.0.0"
        subgraph_metadata[0]
          input_tensor_metadata[0]  "image": ImageProperties(color_space RGB, default_size W x H),
                                    NormalizationOptions(mean, std), Stats(min, max) of the tensor's values
          output_tensor_metadata[0] "probability": FeatureProperties, Stats(0, 1),
                                    associated file labels.txt (TENSOR_AXIS_LABELS)
        associated_files: edgeclf-model.json (DESCRIPTIONS)
      Model.metadata["edgeclf_sha256"] -> 32 bytes: sha256 of the whole file without these 32 bytes (checked by the
                                          runtime before any interpreter sees the file)
      zip members: labels.txt          one class per line, in output order
                   edgeclf-model.json  {"format": "edgeclf.model/1", "labels": [...], "input": InputContract fields,
                                 "quantization": "int8", "io": "uint8", "source": {...}, "versions": {...}}

Normalization: every edgeclf graph scales pixels itself, so the tensor takes raw pixels. For a uint8/int8 input the
consumers ignore NormalizationOptions (they feed the raw quantized pixels) and we record MobileNetV2's 127.5/127.5 for
information. For a float32 input (``--io float32``) the consumers *apply* (x - mean) / std before feeding, so we write
mean 0 and std 1: the graph must receive 0..255, not [-1, 1]. ``input.mean``/``input.std`` in edgeclf-model.json match.

Reading it back without TensorFlow: :func:`edgeclf.runtime.model_metadata.read_metadata` (pure Python + flatbuffers).
The schema's generated Python code is vendored in ``_metadata_schema_fb.py``; the TFLite model itself is edited
with TensorFlow's own generated schema module (export always has TensorFlow).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import flatbuffers
import numpy as np

from edgeclf import __version__
from edgeclf.contracts import (LABELS_FILE, METADATA_IDENTIFIER, METADATA_NAME, MODEL_CONTRACT_FILE,
                               MODEL_CONTRACT_FORMAT)
from edgeclf.runtime.model_check import DIGEST_NAME, content_digest, digest_span

from . import _metadata_schema_fb as meta_fb
from .pack import pack_model

MIN_PARSER_VERSION = "1.0.0"  # every field written here exists since metadata schema 1.0.0
_TENSOR_RANGES = {"uint8": (0.0, 255.0), "int8": (-128.0, 127.0), "float32": (0.0, 255.0)}


def normalization_for(input_dtype: str) -> tuple[float, float]:
    """(mean, std) to declare for an input tensor of ``input_dtype`` (see the module docstring for why)."""
    return (0.0, 1.0) if input_dtype.startswith("float") else (127.5, 127.5)


def build_contract(*, labels: list[str], width: int, height: int, input_dtype: str, quantization: str, io_type: str,
                   source: dict | None = None, versions: dict | None = None, recipe: str | None = None) -> dict:
    """The model contract (edgeclf-model.json) packed into the model: everything the runtime needs to feed it."""
    mean, std = normalization_for(input_dtype)
    return {
        "format": MODEL_CONTRACT_FORMAT,
        "labels": list(labels),
        "input": {"height": int(height), "width": int(width), "channels": 3, "dtype": input_dtype, "color": "RGB",
                  "resize": "bilinear", "mean": mean, "std": std},
        "output": {"kind": "probabilities", "classes": len(labels)},
        "quantization": quantization,
        "io": io_type,
        **({"int8_recipe": recipe} if recipe else {}),
        "source": source or {},
        "versions": {"edgeclf": __version__, **(versions or {})},
    }


def embed_metadata(model: bytes, contract: dict, *, name: str, description: str,
                   author: str = "edgeclf", license_: str = "") -> bytes:
    """Return ``model`` with TFLite Model Metadata and the associated files (labels.txt, edgeclf-model.json) embedded.

    Any metadata or appended archive already in ``model`` is replaced."""
    labels, spec = contract["labels"], contract["input"]
    metadata = _metadata_flatbuffer(labels, spec, name=name, description=description, author=author,
                                    license_=license_)
    flat = _with_metadata_buffer(model, metadata)
    archive = io.BytesIO()
    archive.write(flat)
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as zf:
        # Stored (consumers read members in place) with a fixed timestamp, so an export is byte-reproducible.
        for member, text in ((LABELS_FILE, "".join(f"{label}\n" for label in labels)),
                             (MODEL_CONTRACT_FILE, json.dumps(contract, indent=2, default=str) + "\n")):
            zf.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), text)
    return seal(archive.getvalue())


def seal(model: bytes) -> bytes:
    """Fill in the content digest (see :mod:`edgeclf.runtime.model_check`): the last change made to an export."""
    span = digest_span(model)
    sealed = bytearray(model)
    sealed[span[0]:span[1]] = content_digest(model, span)
    return bytes(sealed)


def _metadata_flatbuffer(labels, spec: dict, *, name: str, description: str, author: str, license_: str) -> bytes:
    low, high = _TENSOR_RANGES.get(spec["dtype"], (0.0, 255.0))

    image = meta_fb.TensorMetadataT()
    image.name = "image"
    image.description = (f"{spec['width']}x{spec['height']} RGB photo, {spec['dtype']} pixels 0..255 "
                         "(resize with bilinear filtering; the model scales pixels itself)")
    image.content = meta_fb.ContentT()
    image.content.contentPropertiesType = meta_fb.ContentProperties.ImageProperties
    image.content.contentProperties = meta_fb.ImagePropertiesT()
    image.content.contentProperties.colorSpace = meta_fb.ColorSpaceType.RGB
    image.content.contentProperties.defaultSize = meta_fb.ImageSizeT()
    image.content.contentProperties.defaultSize.width = int(spec["width"])
    image.content.contentProperties.defaultSize.height = int(spec["height"])
    normalization = meta_fb.ProcessUnitT()
    normalization.optionsType = meta_fb.ProcessUnitOptions.NormalizationOptions
    normalization.options = meta_fb.NormalizationOptionsT()
    normalization.options.mean = [float(spec["mean"])]
    normalization.options.std = [float(spec["std"])]
    image.processUnits = [normalization]
    image.stats = meta_fb.StatsT()
    image.stats.min, image.stats.max = [low], [high]

    probs = meta_fb.TensorMetadataT()
    probs.name = "probability"
    probs.description = f"Probability of each of the {len(labels)} classes, in the order of {LABELS_FILE}."
    probs.content = meta_fb.ContentT()
    probs.content.contentPropertiesType = meta_fb.ContentProperties.FeatureProperties
    probs.content.contentProperties = meta_fb.FeaturePropertiesT()
    probs.stats = meta_fb.StatsT()
    probs.stats.min, probs.stats.max = [0.0], [1.0]
    label_file = meta_fb.AssociatedFileT()
    label_file.name = LABELS_FILE
    label_file.description = "Class labels, one per line, in output order."
    label_file.type = meta_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    probs.associatedFiles = [label_file]

    subgraph = meta_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image]
    subgraph.outputTensorMetadata = [probs]

    contract_file = meta_fb.AssociatedFileT()
    contract_file.name = MODEL_CONTRACT_FILE
    contract_file.description = "edgeclf input contract, labels and provenance (JSON)."
    contract_file.type = meta_fb.AssociatedFileType.DESCRIPTIONS

    root = meta_fb.ModelMetadataT()
    root.name = name
    root.description = description
    root.version = f"edgeclf {__version__}"
    root.author = author
    if license_:
        root.license = license_
    root.subgraphMetadata = [subgraph]
    root.associatedFiles = [contract_file]
    root.minParserVersion = MIN_PARSER_VERSION

    builder = flatbuffers.Builder(0)
    builder.Finish(root.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _with_metadata_buffer(model: bytes, metadata: bytes) -> bytes:
    """The TFLite flatbuffer with ``metadata`` stored as Model.metadata["TFLITE_METADATA"] (replacing any old one),
    re-packed without whatever archive followed it (aligned and with shared vectors, see :mod:`.pack`)."""
    from tensorflow.lite.python import schema_py_generated as tfl_fb

    tree = tfl_fb.ModelT.InitFromObj(tfl_fb.Model.GetRootAsModel(model, 0))
    tree.buffers = tree.buffers or []
    tree.metadata = tree.metadata or []
    _set_metadata(tfl_fb, tree, METADATA_NAME, metadata)
    # The digest's place, filled by seal(). The placeholder is the model's own hash, so the packer never mistakes it
    # for an equal vector to share (which an all-zero placeholder could be).
    _set_metadata(tfl_fb, tree, DIGEST_NAME, hashlib.sha256(model).digest())
    return pack_model(tree)


def _set_metadata(tfl_fb, tree, name: str, data: bytes) -> None:
    """Model.metadata[name] = a buffer holding ``data`` (replacing an existing entry of that name)."""
    buffer = tfl_fb.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    for entry in tree.metadata:
        if _text(entry.name) == name:
            tree.buffers[entry.buffer] = buffer
            return
    tree.buffers.append(buffer)
    entry = tfl_fb.MetadataT()
    entry.name = name
    entry.buffer = len(tree.buffers) - 1
    tree.metadata.append(entry)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
