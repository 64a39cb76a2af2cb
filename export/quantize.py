"""Full-integer quantization in two steps, so many int8 recipes cost one calibration: calibrate, then quantize.

``TFLiteConverter.convert()`` with a representative dataset does exactly this internally (``lite.py``: the
calibrator records every tensor's min/max into the float model, then the MLIR quantizer rewrites it). Splitting the
two steps here (``_experimental_calibrate_only`` + ``convert.mlir_quantize``, the pair TensorFlow's own
QuantizationDebugger uses) lets every recipe reuse one calibrated model, and exposes the quantizer's
``denylisted_ops`` / ``denylisted_nodes``: ops or tensors left in float, with QUANTIZE/DEQUANTIZE around them. Plain
full-integer through this path is byte-identical to ``convert()`` with the same options (tested).

16x8 (int16 activations, int8 weights) is not an MLIR-quantizer mode: TensorFlow routes it through the legacy
calibrate-and-quantize path, so :func:`convert_16x8` uses the converter directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

IO_DTYPES = ("uint8", "int8", "float32")


@dataclass(frozen=True)
class Selection:
    """What stays float in an otherwise full-integer model: builtin op names (``"SOFTMAX"``) and/or tensor names
    (a node is named by its output tensor, as the QuantizationDebugger reports it)."""

    ops: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.ops and not self.nodes


def representative(images: np.ndarray):
    """A representative-dataset factory over (N, H, W, 3) uint8 images, fed as float32 0..255 (the graph's input)."""

    def generate() -> Iterable[list[np.ndarray]]:
        for image in images:
            yield [image[np.newaxis].astype(np.float32)]

    return generate


def calibrate(converter, images: np.ndarray) -> bytes:
    """The float model with every tensor's calibrated min/max recorded (not yet quantized).

    ``converter`` is a fresh ``TFLiteConverter`` of the float32-input SavedModel."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = representative(images)
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the documented debugger path, see module doc
    return bytes(converter.convert())


def quantize(calibrated: bytes, *, io_type: str = "uint8", output_type: str | None = None,
             keep_float: Selection = Selection(), per_channel: bool = True) -> bytes:
    """Integer model from a calibrated one. ``output_type`` defaults to ``io_type``; ``keep_float`` names what stays
    float (the model then needs TFLITE_BUILTINS float kernels next to the integer ones)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as tf_convert

    dtypes = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}
    return bytes(tf_convert.mlir_quantize(
        calibrated, disable_per_channel=not per_channel, input_data_type=dtypes[io_type],
        output_data_type=dtypes[output_type or io_type],
        denylisted_ops=list(keep_float.ops) or None, denylisted_nodes=list(keep_float.nodes) or None))


def debug_model(calibrated: bytes, *, per_channel: bool = True) -> bytes:
    """The same quantization instrumented with NumericVerify ops (float in/out), for the QuantizationDebugger."""
    from tensorflow.lite.python import convert as tf_convert

    return bytes(tf_convert.mlir_quantize(calibrated, disable_per_channel=not per_channel, enable_numeric_verify=True))


def convert_16x8(converter, images: np.ndarray) -> bytes:
    """int16 activations / int8 weights, float32 in and out (16x8 kernels take no uint8 input)."""
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    converter.representative_dataset = representative(images)
    return bytes(converter.convert())


def operator_names(data: bytes) -> Sequence[str]:
    """Builtin operator name of every node in subgraph 0, in execution order (for tests and the report)."""
    from tensorflow.lite.python import schema_py_generated as fb

    names = {value: key for key, value in vars(fb.BuiltinOperator).items() if not key.startswith("_")}
    model = fb.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    found = []
    for i in range(graph.OperatorsLength()):
        code = codes[graph.Operators(i).OpcodeIndex()]
        found.append(names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"))
    return found
