"""Where int8 hurts: TensorFlow's QuantizationDebugger, layer by layer, on calibration images.

The debugger runs a copy of the quantized model instrumented with NumericVerify ops: each quantized op is also run
in float on the same (quantized) input, and the difference is recorded. Divided by the output tensor's
quantization scale, the RMSE says how many quantization steps a layer is off on average: about 0.29 (1/sqrt(12)) is
pure rounding; well above that, the layer loses information (clipped ranges, channels that share one scale badly).
The worst layers are listed in report.md and are the candidates the ``float-worst`` int8 recipe keeps in float.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace

import numpy as np

from .quantize import debug_model, representative

DEBUG_SAMPLES = 32  # the instrumented model runs every op twice with reference kernels: keep it bounded
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ROUNDING_ONLY = 1 / math.sqrt(12)  # RMSE/scale of a layer whose only error is rounding to the nearest step


@dataclass(frozen=True)
class LayerError:
    """One quantized op's error on the debug images."""

    tensor: str  # output tensor name: what the quantizer's ``denylisted_nodes`` takes
    layer: str  # the Keras layer it comes from, e.g. block_14_depthwise_relu
    op: str  # builtin operator, e.g. DEPTHWISE_CONV_2D
    position: int  # the layer's place among the quantized layers, in execution order (0 = first)
    rmse_over_scale: float
    rmse: float
    max_abs_error: float
    scale: float
    weights: int = 0  # weight + bias elements the op stores (conv and fully-connected ops): what keeping it float costs


def layer_errors(calibrated: bytes, images: np.ndarray, *, model=None, per_channel: bool = True) -> list[LayerError]:
    """Every quantized op's error, worst first, measured on ``images`` ((N, H, W, 3) uint8, at most
    :data:`DEBUG_SAMPLES` are used). ``model``: the Keras model, to name the layer each op comes from."""
    import tensorflow as tf

    from edgeclf.native import quiet_tensorflow

    images = np.asarray(images)[:DEBUG_SAMPLES]
    with quiet_tensorflow():
        debugger = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model(calibrated, per_channel=per_channel),
            debug_dataset=representative(images))
        debugger.run()
    names = (layer_names(model), model.layers[-1].name) if model is not None else (set(), "")
    found = [_layer_error(debugger, name, metrics, names) for name, metrics in debugger.layer_statistics.items()]
    order = {id(e): i for i, e in enumerate(sorted(found, key=lambda e: e.position))}
    found = [replace(e, position=order[id(e)]) for e in found]  # op index in the debug model -> layer number
    return sorted(found, key=lambda e: e.rmse_over_scale, reverse=True)


def _layer_error(debugger, name: str, metrics: dict, layers: tuple[set[str], str]) -> LayerError:
    """One NumericVerify op's statistics, attributed to the op it checks. Its inputs are the quantized output
    (scale, zero point) and the float copy, whose name is the op's output tensor in the calibrated model, so in
    every recipe's model too (the quantized copy gets a suffix in the debug model)."""
    interpreter = debugger._quant_interpreter  # noqa: SLF001 - the debugger has no public accessor for these
    quantized, reference = debugger._numeric_verify_op_details[name]["inputs"][:2]  # noqa: SLF001
    tensor = interpreter._get_tensor_details(quantized, subgraph_index=0)  # noqa: SLF001
    op_index = debugger._defining_op[quantized]  # noqa: SLF001
    scale = float(tensor["quantization_parameters"]["scales"][0])
    rmse = math.sqrt(float(metrics["mean_squared_error"]))
    name = interpreter._get_tensor_details(reference, subgraph_index=0)["name"]  # noqa: SLF001
    details = interpreter._get_op_details(op_index)  # noqa: SLF001
    return LayerError(tensor=name, layer=keras_layer(name, *layers), op=details["op_name"],
                      position=int(op_index), rmse_over_scale=round(rmse / scale, 4) if scale else math.inf,
                      rmse=round(rmse, 6), max_abs_error=round(float(metrics["max_abs_error"]), 6), scale=scale,
                      weights=_stored_weights(interpreter, details))


def _stored_weights(interpreter, details: dict) -> int:
    """Elements of an op's constant inputs (filter and bias): inputs 1.. of a convolution or fully-connected op."""
    if details["op_name"] not in WEIGHTED_OPS:
        return 0
    shapes = [interpreter._get_tensor_details(i, subgraph_index=0)["shape"]  # noqa: SLF001
              for i in details["inputs"][1:] if i >= 0]
    return int(sum(np.prod(shape) for shape in shapes))


def keras_layer(tensor: str, layers: set[str], output_layer: str = "") -> str:
    """The Keras layer (of ``layers``, the model's layer names) a TFLite tensor comes from.

    Tensor names are TensorFlow op paths, ``;``-joined when the converter fused ops (conv + batch norm + ReLU6):
    ``model_1/base_1/block_14_depthwise_relu_1/Relu6;...``; tracing appends ``_1`` to every scope. The deepest
    scope that names a layer wins. A name without scopes (``StatefulPartitionedCall_1:0``) is the SavedModel's
    output, so ``output_layer``'s; anything else keeps its tensor name."""
    for part in tensor.split(";"):
        for scope in reversed(part.split("/")[:-1]):
            for candidate in (re.sub(r"_\d+$", "", scope), scope):
                if candidate in layers:
                    return candidate
    return output_layer if "/" not in tensor and output_layer else tensor


def layer_names(model) -> set[str]:
    """Every layer name of a Keras model, nested models (the MobileNetV2 base) included."""
    found = set()
    for layer in model.layers:
        found.add(layer.name)
        if hasattr(layer, "layers"):
            found |= layer_names(layer)
    return found


def summary(errors: list[LayerError], images: int, top: int = 10) -> dict:
    """The report's ``quantization_debugger`` section: the ``top`` worst layers and how many layers there are."""
    return {"images": int(images), "layers": len(errors), "rounding_only": round(ROUNDING_ONLY, 4),
            "worst": [asdict(e) for e in errors[:top]]}
