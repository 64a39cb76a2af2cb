"""Keras model -> TFLite flatbuffer, one function per job: load, re-size, convert, inspect.

Why ``model.export`` + ``from_saved_model`` and not ``TFLiteConverter.from_keras_model``: with Keras 3 that path
breaks (it calls tf_keras hooks that Keras 3 does not register; keras-team/keras#19108, tensorflow#62989), and the
Keras maintainers point to ``Model.export`` (a SavedModel) as the supported route. The SavedModel is exported with a
fixed ``(1, H, W, 3)`` input signature. (Tried and rejected: ``from_concrete_functions`` with the model as trackable
keeps the weights as resource variables, so float16/dynamic come out unquantized and int8 calibration crashes on
READ_VARIABLE; without the trackable it works but TensorFlow warns it is a deprecated path.)

Compatibility with older interpreters (tflite-runtime 2.14 on a Pi): only TFLITE_BUILTINS / TFLITE_BUILTINS_INT8
ops are allowed, and dynamic-range quantization keeps dense layers per-tensor
(``_experimental_disable_per_channel_quantization_for_dense_layers``): per-channel hybrid FULLY_CONNECTED is op
version 12, which tflite-runtime 2.14 cannot load. :func:`op_set` lists what a file needs; the report records it.

Input/output types:

* float32, float16, dynamic: uint8 RGB in (the graph's own Cast), float32 probabilities out.
* int8 (full-integer): the graph is re-instantiated with a float32 input so the Cast disappears and every op is
  integer; the quantizer then gives it ``--io`` typed input/output (recipes with a float head output float32, see
  :mod:`.recipes`). The calibrated input range is pinned to exactly 0..255 (see :func:`_pin_input_range`), so a
  uint8 input has scale 1 / zero point 0 (raw camera pixels go straight in) and an int8 input has scale 1 / zero
  point -128.
* int16x8 (int16 activations, int8 weights): float32 in and out, the 0..255 pixel values as they are.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgeclf.contracts import DEFAULT_IO, FORMATS, IO_TYPES
from edgeclf.errors import EdgeclfError, MissingDependencyError, UsageError, first_line
from edgeclf.native import quiet_tensorflow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

CALIBRATED_FORMATS = ("int8", "int16x8")  # need representative images
_EXPECTED_INPUT_QUANT = {"uint8": (1.0, 0), "int8": (1.0, -128)}


class ConversionError(EdgeclfError):
    """TensorFlow could not convert the model (exit 1)."""


def load_keras_model(path: str | os.PathLike):
    """The run's float model, checked to be an edgeclf-shaped classifier: one (H, W, 3) image in, (classes,) out."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: model not found", "is this an edgeclf run directory? (edgeclf train writes it)")
    try:
        with quiet_tensorflow():
            import keras
    except ImportError:
        raise MissingDependencyError("edgeclf export", 'pip install "edgeclf[train]"') from None
    try:
        with quiet_tensorflow():
            model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - zip, h5py, json and Keras errors all mean "not a usable model"
        raise UsageError(f"{path}: cannot load the Keras model ({_reason(exc)})",
                         "restore model.keras or re-run edgeclf train") from None
    inputs, outputs = list(model.inputs), list(model.outputs)
    in_shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
    out_shape = tuple(outputs[0].shape) if len(outputs) == 1 else ()
    if len(in_shape) != 4 or in_shape[-1] != 3 or None in in_shape[1:3] or len(out_shape) != 2:
        raise UsageError(f"{path}: not an edgeclf image classifier (input {in_shape or 'several'}, "
                         f"output {out_shape or 'several'})", "export a model trained with edgeclf train")
    return model


def input_size(model) -> tuple[int, int]:
    """(width, height) of the model's image input."""
    _, height, width, _ = model.inputs[0].shape
    return int(width), int(height)


def with_input(model, image_size: int | None = None, dtype: str | None = None):
    """The same network (same weights) with another square input size and/or input dtype.

    MobileNetV2 + global average pooling has no size-dependent weights, so rewriting every InputLayer's shape in the
    config and copying the weights is exact. A float32 input removes the uint8 Cast (used for full-integer int8)."""
    if image_size is None and dtype is None:
        return model
    config = copy.deepcopy(model.get_config())
    outer = [True]

    def rewrite(node):
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer":
                cfg = node["config"]
                shape = list(cfg.get("batch_shape") or cfg.get("batch_input_shape"))
                if image_size is not None:
                    shape[1:3] = [int(image_size), int(image_size)]
                cfg["batch_shape"] = shape
                cfg.pop("batch_input_shape", None)
                if dtype is not None and outer[0]:
                    cfg["dtype"] = dtype
                outer[0] = False  # only the outermost model's input changes dtype (it is listed first)
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(config)
    try:
        clone = model.__class__.from_config(config)
        clone.set_weights(model.get_weights())
    except Exception as exc:  # noqa: BLE001
        what = f"{image_size} px" if image_size else f"a {dtype} input"
        raise UsageError(f"cannot re-instantiate the model at {what} ({_reason(exc)})",
                         "export at the trained size (omit --image-size)") from None
    return clone


class Converter:
    """Converts one Keras model to any format. Each input dtype's SavedModel (``model.export``, batch 1) is written
    once to a private temp folder and reused by every format that needs it; use as a context manager."""

    def __init__(self, model):
        self.model = model
        self.size = input_size(model)
        self._dir = Path(tempfile.mkdtemp(prefix="edgeclf-savedmodel-"))
        self._saved: dict[str, Path] = {}

    def __enter__(self) -> "Converter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def _saved_model(self, dtype: str) -> Path:
        """uint8 input: the run's graph as is (its Cast included). float32 input: the same weights without the Cast,
        so full-integer quantization leaves no float op behind."""
        import tensorflow as tf

        if dtype not in self._saved:
            model = self.model if dtype == "uint8" else with_input(self.model, dtype=dtype)
            width, height = self.size
            path = self._dir / dtype
            with quiet_tensorflow():
                model.export(str(path), format="tf_saved_model", verbose=False,
                             input_signature=[tf.TensorSpec((1, height, width, 3), dtype, name="image")])
            self._saved[dtype] = path
        return self._saved[dtype]

    def tflite_converter(self, dtype: str):
        """A fresh ``TFLiteConverter`` of the ``dtype``-input SavedModel, builtin ops only."""
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_saved_model(str(self._saved_model(dtype)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter

    def quietly(self, step, *args, what: str = "int8", **kwargs):
        """Run one TensorFlow conversion step with its chatter hidden and its errors as :class:`ConversionError`."""
        try:
            with quiet_tensorflow():
                return step(*args, **kwargs)
        except EdgeclfError:
            raise
        except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError, RuntimeError, ValueError...
            raise ConversionError(f"TensorFlow could not convert the model to {what}: {_reason(exc)}",
                                  "set EDGECLF_DEBUG=1 to see TensorFlow's full output") from None

    def calibrated(self, images: np.ndarray) -> bytes:
        """The float model with activation ranges measured on ``images`` (uint8, pinned to 0..255)."""
        from .quantize import calibrate

        return self.quietly(calibrate, self.tflite_converter("float32"), _pin_input_range(images))

    def convert(self, fmt: str, *, io_type: str = DEFAULT_IO, calibration: np.ndarray | None = None,
                per_channel: bool = True) -> bytes:
        """The .tflite bytes for ``fmt``; int8 and int16x8 need ``calibration`` images (N, H, W, 3) uint8 at the
        model's input size. int8 here is the plain full-integer recipe (see :mod:`.int8` for the others). Raises
        :class:`ConversionError` with TensorFlow's first line.

        ``per_channel=False`` quantizes int8 weights per tensor. Never use it for real: MobileNetV2's depthwise
        filters differ too much between channels (measured: cats-vs-dogs test accuracy 97.8 % -> 69.2 %). It
        exists so the tests can make a genuinely degraded model for the gate."""
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}", f"use one of: {', '.join(FORMATS)}")
        if io_type not in IO_TYPES:
            raise UsageError(f"--io {io_type!r} is not supported", f"use one of: {', '.join(IO_TYPES)}")
        if fmt in CALIBRATED_FORMATS and (calibration is None or not len(calibration)):
            raise UsageError(f"{fmt} export needs calibration images", "check the training split in splits.json")
        if fmt == "int8":
            from .int8 import Int8Builder
            from .recipes import RECIPES

            builder = Int8Builder(self, calibration, io_type=io_type, per_channel=per_channel)
            return builder.build(RECIPES["full-int8"])
        if fmt == "int16x8":
            from .quantize import convert_16x8

            return self.quietly(convert_16x8, self.tflite_converter("float32"), _pin_input_range(calibration),
                                what=fmt)
        return self.quietly(_convert_float, self.tflite_converter("uint8"), fmt, what=fmt)


def _convert_float(converter, fmt: str) -> bytes:
    """float32 as is; float16 weights; dynamic range (int8 weights, per-tensor dense layers for tflite-runtime 2.14)."""
    import tensorflow as tf

    if fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return bytes(converter.convert())


def check_input_quantization(data: bytes, io_type: str) -> None:
    """An integer input must be raw pixels (uint8: scale 1, zero 0; int8: scale 1, zero -128), whatever the recipe."""
    if io_type not in _EXPECTED_INPUT_QUANT:
        return
    found = tensor_io(data)["input"]["quantization"]
    scale, zero = _EXPECTED_INPUT_QUANT[io_type]
    if found is None or abs(found[0] - scale) > 1e-6 or found[1] != zero:
        raise ConversionError(f"int8 input quantization came out as {found}, expected scale {scale} and "
                              f"zero point {zero}", "this is a bug in edgeclf export; please report it")


def _pin_input_range(images: np.ndarray) -> np.ndarray:
    """Calibration images whose pixel range is exactly 0..255, so the quantized input is raw pixels.

    The converter derives the input tensor's scale from the min/max it sees; real photo sets nearly always contain
    0 and 255 somewhere, but a dark or washed-out set would give a scale != 1 that every consumer feeding raw camera
    bytes would get wrong. If the set lacks an extreme, one pixel of the first image is set to it (a copy)."""
    images = np.asarray(images, dtype=np.uint8)
    if images.min() == 0 and images.max() == 255:
        return images
    images = images.copy()
    if images.min() != 0:
        images[0, 0, 0, :] = 0
    if images.max() != 255:
        images[0, 0, -1, :] = 255
    return images


def _schema():
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def op_set(data: bytes) -> list[str]:
    """The builtin operators a .tflite needs, as "NAME/vVERSION" (custom ops would show as CUSTOM:name)."""
    fb = _schema()
    names = {value: key for key, value in vars(fb.BuiltinOperator).items() if not key.startswith("_")}
    model = fb.Model.GetRootAsModel(data, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
        found.add(f"{name}/v{code.Version()}")
    return sorted(found)


def tensor_io(data: bytes) -> dict:
    """{"input"|"output": {"dtype", "shape", "quantization": (scale, zero_point) or None}} of subgraph 0."""
    fb = _schema()
    types = {value: key.lower() for key, value in vars(fb.TensorType).items() if not key.startswith("_")}
    model = fb.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)

    def describe(index):
        tensor = graph.Tensors(index)
        quant = tensor.Quantization()
        params = None
        if quant is not None and quant.ScaleLength():
            params = (float(quant.Scale(0)), int(quant.ZeroPoint(0)))
        return {"dtype": types.get(tensor.Type(), str(tensor.Type())), "shape": tensor.ShapeAsNumpy().tolist(),
                "quantization": params}

    return {"input": describe(graph.Inputs(0)), "output": describe(graph.Outputs(0))}


def _reason(exc: BaseException) -> str:
    """One readable line from a (often very long, MLIR-located) TensorFlow error: the ops TFLite lacks, if that is
    what it says, else its first line."""
    unsupported = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", str(exc))))
    if unsupported:
        return f"operations with no TFLite builtin kernel: {', '.join(unsupported)}"
    return first_line(exc)
