"""What an edgeclf-exported .tflite says about itself, as a plain dict, without TensorFlow.

``edgeclf export`` writes standard TFLite Model Metadata plus two associated files (see
``edgeclf.export.metadata`` for the full layout): ``labels.txt`` (TENSOR_AXIS_LABELS of the output tensor) and
``edgeclf-model.json`` (format ``edgeclf.model/1``: labels, the input contract, quantization, io type, provenance).
The flatbuffer parsing lives in :mod:`edgeclf.runtime.model_file`; this module only shapes its answer.
"""

from __future__ import annotations

from .model_file import ModelInfo, read_model_info


def read_metadata(model_bytes: bytes, name: str = "<model>") -> dict:
    """``{"labels", "input", "name", "description", "version", "quantization", "io", "has_metadata",
    "associated_files", "contract"}`` from a .tflite's bytes.

    ``input`` holds the InputContract fields (height, width, channels, dtype, color, resize, mean, std): from the
    packed model contract when present, else from the standard ImageProperties/NormalizationOptions (dtype unknown).
    Values a model does not declare are None (labels, input) or empty strings.
    """
    return describe(read_model_info(model_bytes, name))


def describe(info: ModelInfo) -> dict:
    """:func:`read_metadata`'s answer for an already parsed model (``Classifier.info``)."""
    contract = info.contract if isinstance(info.contract, dict) else {}
    spec = contract.get("input") if isinstance(contract.get("input"), dict) else None
    if spec is None and info.image_size:
        width, height = info.image_size
        spec = {"height": height, "width": width, "channels": 3, "dtype": None,
                "color": info.color_space or None, "resize": None,
                "mean": info.mean[0] if info.mean else None, "std": info.std[0] if info.std else None}
    return {
        "labels": info.labels,
        "input": spec,
        "name": info.name,
        "description": info.description,
        "version": info.version,
        "quantization": contract.get("quantization", ""),
        "io": contract.get("io", ""),
        "has_metadata": info.has_metadata,
        "associated_files": info.associated_files,
        "contract": contract or None,
    }
