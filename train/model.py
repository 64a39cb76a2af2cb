"""The classifier: uint8 RGB in, MobileNetV2 features, a small head, one probability per class out.

Pixel scaling to [-1, 1] is the model's first layer, so Keras and TFLite models alike take the uint8 pixels that
``edgeclf.runtime.preprocess.load_image`` produces, and nobody outside the graph needs to know MobileNetV2's
normalisation. The saved model holds no augmentation layers (augmentation runs in the tf.data pipeline), so
``model.keras`` converts to TFLite without random ops.

BatchNorm stays in inference mode during fine-tuning: the base is called with ``training=False``, and because Keras 3
functional models pass the outer ``training`` flag down to nested layers anyway, :func:`set_trainable` also freezes
every BatchNormalization layer (a frozen Keras 3 BN layer always uses its moving statistics).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from edgeclf.contracts import check_image_size  # noqa: E402
from edgeclf.errors import UsageError, first_line  # noqa: E402

BASE_LAYER = "mobilenetv2_base"
from .options import ALPHAS, BASE_NAME  # noqa: E402 (defined once, TensorFlow-free)


def build_model(num_classes: int, *, alpha: float = 1.0, image_size: int = 224, weights: str | Path | None = "imagenet",
                dropout: float = 0.2) -> keras.Model:
    """MobileNetV2 (``include_top=False``) + global average pooling + dropout + softmax dense.

    ``weights``: ``"imagenet"`` (Keras's download cache, ``$KERAS_HOME/models``), ``None``/``"none"`` (random
    initialisation) or a path to a Keras weights file for the base (e.g. the no-top ``.h5``).
    The base starts frozen (phase 1); :func:`set_trainable` unfreezes it for fine-tuning.
    """
    if num_classes < 2:
        raise UsageError(f"need at least 2 classes, got {num_classes}", "add a folder per class")
    check_image_size(image_size)
    base_weights = _resolve_weights(weights, alpha, image_size)
    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_minus1_1")(inputs)
    base = _load_base(alpha, image_size, base_weights)
    base.trainable = False
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"edgeclf_mobilenetv2_{alpha:g}_{image_size}")


def base_of(model: keras.Model) -> keras.Model:
    """The MobileNetV2 sub-model inside an edgeclf model."""
    return model.get_layer(BASE_LAYER)


def set_trainable(model: keras.Model, *, fine_tune_at: int | None) -> int:
    """Phase 1 (``fine_tune_at=None``): only the head trains. Phase 2: base layers from index ``fine_tune_at`` on
    train too, except BatchNormalization, which stays frozen so its moving statistics never change.
    Returns how many base layers are trainable."""
    base = base_of(model)
    if fine_tune_at is None:
        base.trainable = False
        return 0
    if not 0 <= fine_tune_at < len(base.layers):
        raise UsageError(f"--fine-tune-at {fine_tune_at} is out of range",
                         f"the base has {len(base.layers)} layers; use 0..{len(base.layers) - 1}")
    base.trainable = True
    count = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= fine_tune_at and not isinstance(layer, keras.layers.BatchNormalization)
        count += layer.trainable
    return count


def calibrate_batchnorm(model: keras.Model, images) -> None:
    """Set every BatchNorm layer's moving statistics to those of ``images`` (uint8 batch), for ``--weights none``.

    A randomly initialised MobileNetV2 in inference mode (moving mean 0, variance 1) shrinks its activations layer
    after layer to ~1e-11, so a head on the frozen base could learn nothing. One forward pass in training mode with
    momentum 0 gives each layer the statistics of the data it actually sees; after that the base is well-scaled and
    BatchNorm stays in inference mode as usual. Pretrained weights already carry real statistics and skip this.
    """
    base = base_of(model)
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [(layer.trainable, layer.momentum) for layer in norms]
    was_trainable = base.trainable
    base.trainable = True
    try:
        for layer in norms:
            layer.trainable, layer.momentum = True, 0.0
        scaled = model.get_layer("to_minus1_1")(keras.ops.convert_to_tensor(images))
        base(scaled, training=True)
    finally:
        for layer, (trainable, momentum) in zip(norms, saved):
            layer.trainable, layer.momentum = trainable, momentum
        base.trainable = was_trainable


def _resolve_weights(weights, alpha: float, image_size: int):
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        if alpha not in ALPHAS:
            raise UsageError(f"no ImageNet weights for --alpha {alpha:g}",
                             f"use one of {', '.join(f'{a:g}' for a in ALPHAS)} or --weights none")
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UsageError(f"--weights {weights}: file not found", "pass imagenet, none, or a path to a weights .h5 file")
    return str(path.resolve())


def _load_base(alpha: float, image_size: int, weights):
    shape = (image_size, image_size, 3)
    try:
        return keras.applications.MobileNetV2(input_shape=shape, alpha=alpha, include_top=False, weights=weights,
                                              name=BASE_LAYER)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - keras raises plain Exception for download failures
        if weights == "imagenet":
            raise UsageError(f"could not get the ImageNet weights for {BASE_NAME} alpha {alpha:g} at {image_size} px "
                             f"({download_reason(exc)})",
                             "offline? pass --weights PATH to a MobileNetV2 no-top .h5 weights file") from None
        raise UsageError(f"--weights {weights}: could not load it into {BASE_NAME} alpha {alpha:g} "
                         f"({download_reason(exc)})",
                         "pass a MobileNetV2 no-top weights file made for the same --alpha") from None


def download_reason(exc: BaseException) -> str:
    """A short reason: Keras download errors read "URL fetch failure on <url>: None -- <reason>"; keep the reason."""
    return first_line(exc, limit=10_000).rsplit(" -- ", 1)[-1][:200]
