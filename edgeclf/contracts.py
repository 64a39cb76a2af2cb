"""What the stages agree on, defined once: file names, export formats, TFLite identifiers, the input contract, labels.

Every stage imports these names from here (see ARCHITECTURE.md, "Contracts"); none spells a file name, a format list
or a metadata identifier itself. No TensorFlow, no numpy: the runtime on a Pi imports this module too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError, os_error_reason

# ---- a run directory (written by `edgeclf train`) -----------------------------------------------------------------
MANIFEST_FILE = "edgeclf.json"  # the run manifest, and only that
SPLITS_FILE = "splits.json"
LABELS_FILE = "labels.txt"  # one class per line, in output order (also the member name inside a .tflite)
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
MANIFEST_FORMAT = "edgeclf.run/1"
SPLITS_FORMAT = "edgeclf.splits/1"
SPLIT_NAMES = ("train", "validation", "test")

# ---- an export folder (written by `edgeclf export`) ----------------------------------------------------------------
FORMATS = ("float32", "float16", "dynamic", "int8", "int16x8")  # every format export writes, in report order
ALL_FORMATS = FORMATS[:4]  # what `export --all` writes: int16x8 is asked for by name (no fast CPU kernels)
DEFAULT_FORMATS = ("float32", "int8")
IO_TYPES = ("uint8", "int8", "float32")  # tensor types an int8 model may take and give
DEFAULT_IO = "uint8"
# The export gate and int8's fidelity target (percent / points), shared by the CLI's --help and export/run.py.
DEFAULT_MAX_DROP = 1.0  # accuracy points a format may lose against float
DEFAULT_MIN_AGREEMENT = 99.0  # percent of test images whose top-1 must match the float model
# int8 goes on down its recipes until one keeps float's top-1 on this share (percent); 0 = the first passing one.
# Measured on the default cats-vs-dogs run: full-int8 99.2 %, float-light 99.8 % at 1.09x its latency.
DEFAULT_INT8_TARGET = 99.5
DEFAULT_CALIBRATION_SAMPLES = 256  # training images (a stratified sample) that calibrate int8
DEFAULT_CALIBRATION_MIRROR = True  # ... each also mirrored (benchmarks/results/int8-fidelity-*)
REPORT_FILE = "report.json"  # the validation report, for scripts and the benchmark suite
REPORT_MD_FILE = "report.md"  # the same, for people


def model_filename(fmt: str, io_type: str = DEFAULT_IO) -> str:
    """model_float32.tflite ... model_int8.tflite; a non-default int8 io type is part of the name."""
    if fmt == "int8" and io_type != DEFAULT_IO:
        return f"model_int8_io-{io_type}.tflite"
    return f"model_{fmt}.tflite"


# ---- inside a .tflite ------------------------------------------------------------------------------------------------
TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier of a TFLite model
METADATA_NAME = "TFLITE_METADATA"  # Model.metadata entry holding the ModelMetadata buffer
METADATA_IDENTIFIER = b"M001"  # flatbuffer file identifier of ModelMetadata (metadata_schema.fbs)
MODEL_CONTRACT_FILE = "edgeclf-model.json"  # the contract packed into a model (not the run manifest)
MODEL_CONTRACT_FILES = (MODEL_CONTRACT_FILE, MANIFEST_FILE)  # names read back; earlier exports used the second
MODEL_CONTRACT_FORMAT = "edgeclf.model/1"

# ---- the input contract --------------------------------------------------------------------------------------------
IMAGE_SIZE_RANGE = (32, 512)  # square input sizes MobileNetV2 accepts here; 96..224 are its ImageNet sizes


def check_image_size(image_size: int, option: str = "--image-size") -> int:
    """``image_size`` if it is in :data:`IMAGE_SIZE_RANGE`, else the one error message for every stage."""
    low, high = IMAGE_SIZE_RANGE
    if not low <= int(image_size) <= high:
        raise UsageError(f"{option} {image_size} is out of range", f"use {low}..{high} (96..224 typical)")
    return int(image_size)


@dataclass
class InputContract:
    """What every edgeclf model takes: uint8 RGB of this size, resized (squashed, bilinear) by
    ``edgeclf.runtime.preprocess``. Scaling to [-1, 1] happens inside the model graph, so nobody outside needs
    ``mean``/``std``; they are recorded for other consumers (TFLite metadata: (x - mean) / std)."""

    height: int
    width: int
    channels: int = 3
    dtype: str = "uint8"
    color: str = "RGB"
    resize: str = "bilinear"
    mean: float = 127.5
    std: float = 127.5

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), the order Pillow uses."""
        return (self.width, self.height)


# ---- labels ----------------------------------------------------------------------------------------------------------
def parse_labels(text: str | bytes) -> list[str]:
    """labels.txt content: one class per line, surrounding blanks and blank lines ignored (the TFLite convention)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_labels_file(path: str | Path) -> list[str]:
    """A labels.txt from disk, or a one-line :class:`UsageError` naming it (unreadable or empty)."""
    try:
        labels = parse_labels(Path(path).read_bytes())
    except OSError as exc:
        reason, fix = os_error_reason(exc, path)
        raise UsageError(f"{path}: cannot read labels file: {reason}", fix) from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: cannot read labels file ({exc.__class__.__name__})",
                         "pass a text file with one class name per line") from None
    if not labels:
        raise UsageError(f"{path}: labels file is empty", "pass a text file with one class name per line")
    return labels
