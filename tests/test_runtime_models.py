"""Every dtype path of the Classifier, on REAL models converted with tf.lite.TFLiteConverter from a tiny Keras model.

This module also holds the helpers the other runtime tests share (``tiny_models``, ``embed_metadata``): tiny
(24x20 px) models trained for a few seconds on synthetic coloured shapes, one per input/output dtype combination, plus
the Keras model's own predictions to compare against. Tests may import TensorFlow; the runtime never does.
"""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeclf.errors import ImageError
from edgeclf.runtime.classifier import Classifier, _quantize
from edgeclf.runtime.model_file import read_model_info
from edgeclf.runtime.preprocess import load_image
from tests.fixtures.images import synthetic_image

SIZE = (24, 20)  # (width, height)
LABELS = ["red", "blue", "green"]
# name -> (input dtype, output dtype) as the converter writes them
VARIANTS = {
    "float32": ("float32", "float32"),  # float model, float32 input taking raw 0..255 values
    "uint8_in": ("uint8", "float32"),  # the edgeclf float export: uint8 input, cast inside the graph
    "logits": ("float32", "float32"),  # no softmax at the end: the runtime must apply it
    "int8": ("int8", "int8"),  # full-integer, int8 interface, calibrated on 0..255 (scale 1, zero point -128)
    "uint8": ("uint8", "uint8"),  # full-integer, uint8 interface
    "int8_narrow": ("int8", "int8"),  # calibrated on a narrower range: input scale != 1 (general quantize path)
    "int8_float_io": ("float32", "float32"),  # integer kernels, float interface
    "dynamic": ("float32", "float32"),  # dynamic-range quantized weights
}


def eval_images(n_per_class: int = 12, seed0: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Held-out synthetic images (preprocessed by the runtime path) and their classes."""
    xs, ys = [], []
    for s in range(n_per_class):
        for c in range(len(LABELS)):
            xs.append(load_image(synthetic_image(c, seed0 + s), SIZE))
            ys.append(c)
    return np.stack(xs), np.array(ys)


def _build(out: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    xs, ys = [], []
    for s in range(40):
        for c in range(len(LABELS)):
            xs.append(load_image(synthetic_image(c, s), SIZE))
            ys.append(c)
    x_train, y_train = np.stack(xs), np.array(ys)
    probs_model, logits_model, uint8_model = _keras_models(keras, x_train, y_train)

    x_eval, _ = eval_images()
    np.save(out / "keras_probs.npy", probs_model.predict(x_eval.astype("float32"), verbose=0))
    np.save(out / "keras_logits.npy", logits_model.predict(x_eval.astype("float32"), verbose=0))
    for name, data in _tflite_variants(keras, probs_model, logits_model, uint8_model, x_train).items():
        (out / f"{name}.tflite").write_bytes(data)


def _keras_models(keras, x_train, y_train):
    """(probabilities, logits, uint8-input probabilities) models sharing one trained body."""
    w, h = SIZE

    def body(inputs):
        x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.layers.Dense(len(LABELS), name="logits")(x)

    inp_f = keras.Input((h, w, 3), dtype="float32")
    logits_model = keras.Model(inp_f, body(inp_f))
    probs_model = keras.Model(inp_f, keras.layers.Softmax()(logits_model(inp_f)))
    probs_model.compile("adam", "sparse_categorical_crossentropy")
    probs_model.fit(x_train.astype("float32"), y_train, epochs=60, batch_size=16, verbose=0)
    inp_u8 = keras.Input((h, w, 3), dtype="uint8")
    uint8_model = keras.Model(inp_u8, probs_model(keras.ops.cast(inp_u8, "float32")))
    return probs_model, logits_model, uint8_model


def _tflite_variants(keras, probs_model, logits_model, uint8_model, x_train) -> dict[str, bytes]:
    """Every dtype path the runtime must handle, converted with TensorFlow's own converter (not edgeclf's)."""
    import tensorflow as tf

    w, h = SIZE
    full_range = np.concatenate([x_train[:30], np.zeros((1, h, w, 3), np.uint8), np.full((1, h, w, 3), 255, np.uint8)])
    narrow = np.clip(x_train[:30], 20, 200)

    def representative(images):
        def gen():
            for img in images:
                yield [img[np.newaxis].astype(np.float32)]
        return gen

    def convert(model, *, quant=None, io_type=None, calib=full_range):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        if quant == "int":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative(calib)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io_type is not None:
                conv.inference_input_type = io_type
                conv.inference_output_type = io_type
        elif quant == "dynamic":
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": not for these models
            warnings.simplefilter("ignore")
            return conv.convert()

    vec_in = keras.Input((8,))
    return {
        "float32": convert(probs_model),
        "uint8_in": convert(uint8_model),
        "logits": convert(logits_model),
        "int8": convert(probs_model, quant="int", io_type=tf.int8),
        "uint8": convert(probs_model, quant="int", io_type=tf.uint8),
        "int8_narrow": convert(probs_model, quant="int", io_type=tf.int8, calib=narrow),
        "int8_float_io": convert(probs_model, quant="int"),
        "dynamic": convert(probs_model, quant="dynamic"),
        "vector_input": convert(keras.Model(vec_in, keras.layers.Dense(2, activation="softmax")(vec_in))),
    }


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Folder with <variant>.tflite (no metadata, no labels beside them), keras_probs.npy, keras_logits.npy.
    Built once per test session (about 15 s with the TensorFlow import)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _BUILT:
        out = tmp_path_factory.mktemp("runtime-models")
        _build(out)
        _BUILT[key] = out
    return _BUILT[key]


def model_copy(tiny_models: Path, variant: str, dest: Path, *, labels=LABELS, metadata=True, **kw) -> Path:
    """A copy of a tiny model in ``dest`` (a fresh folder, so no labels file lies beside it), optionally with
    standard TFLite metadata embedded by :func:`embed_metadata`."""
    dest.mkdir(parents=True, exist_ok=True)
    data = (tiny_models / f"{variant}.tflite").read_bytes()
    if metadata:
        data = embed_metadata(data, labels, SIZE, **kw)
    path = dest / f"{variant}.tflite"
    path.write_bytes(data)
    return path


def embed_metadata(model: bytes, labels, size, *, mean=127.5, std=127.5, labels_name="labels.txt",
                   pack_labels=True) -> bytes:
    """Write standard TFLite Model Metadata (tflite-support metadata_schema.fbs) the way the metadata populator does:
    a ModelMetadata flatbuffer in Model.buffers referenced by Model.metadata["TFLITE_METADATA"], then a zip holding the
    associated labels file appended to the model. Written independently of edgeclf.export so the reader is checked
    against the schema, not against the writer it ships with."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    out_tensor = _output_tensor_metadata(b, labels_name)
    in_tensor = _input_tensor_metadata(b, size, mean, std)
    inputs, outputs = _vector(b, [in_tensor]), _vector(b, [out_tensor])
    b.StartObject(7)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    b.PrependUOffsetTRelativeSlot(3, outputs, 0)
    subgraph = b.EndObject()
    subgraphs = _vector(b, [subgraph])
    name, version, parser = b.CreateString("tiny test classifier"), b.CreateString("v1"), b.CreateString("1.0.0")
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(2, version, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(7, parser, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return _attach_metadata(model, bytes(b.Output()), labels if pack_labels else None, labels_name)


def _vector(b, items):
    b.StartVector(4, len(items), 4)
    for item in reversed(items):
        b.PrependUOffsetTRelative(item)
    return b.EndVector()


def _floats(b, values):
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(v)
    return b.EndVector()


def _output_tensor_metadata(b, labels_name: str) -> int:
    """TensorMetadata "probability" with the labels as its TENSOR_AXIS_LABELS associated file."""
    file_name = b.CreateString(labels_name)
    file_desc = b.CreateString("Labels for the categories the model can recognise.")
    b.StartObject(5)  # AssociatedFile
    b.PrependUOffsetTRelativeSlot(0, file_name, 0)
    b.PrependUOffsetTRelativeSlot(1, file_desc, 0)
    b.PrependInt8Slot(2, 2, 0)  # TENSOR_AXIS_LABELS
    labels_file = b.EndObject()
    out_files = _vector(b, [labels_file])
    out_name = b.CreateString("probability")
    b.StartObject(7)  # TensorMetadata
    b.PrependUOffsetTRelativeSlot(0, out_name, 0)
    b.PrependUOffsetTRelativeSlot(6, out_files, 0)
    return b.EndObject()


def _input_tensor_metadata(b, size, mean, std) -> int:
    """TensorMetadata "image": RGB ImageProperties of ``size`` and NormalizationOptions(mean, std)."""
    b.StartObject(2)  # ImageSize
    b.PrependUint32Slot(0, size[0], 0)
    b.PrependUint32Slot(1, size[1], 0)
    image_size = b.EndObject()
    b.StartObject(2)  # ImageProperties
    b.PrependInt8Slot(0, 1, 0)  # RGB
    b.PrependUOffsetTRelativeSlot(1, image_size, 0)
    image_props = b.EndObject()
    b.StartObject(3)  # Content
    b.PrependUint8Slot(0, 2, 0)  # ContentProperties.ImageProperties
    b.PrependUOffsetTRelativeSlot(1, image_props, 0)
    content = b.EndObject()
    mean_v, std_v = _floats(b, [mean]), _floats(b, [std])
    b.StartObject(2)  # NormalizationOptions
    b.PrependUOffsetTRelativeSlot(0, mean_v, 0)
    b.PrependUOffsetTRelativeSlot(1, std_v, 0)
    norm = b.EndObject()
    b.StartObject(2)  # ProcessUnit
    b.PrependUint8Slot(0, 1, 0)  # ProcessUnitOptions.NormalizationOptions
    b.PrependUOffsetTRelativeSlot(1, norm, 0)
    unit = b.EndObject()
    units = _vector(b, [unit])
    in_name = b.CreateString("image")
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(0, in_name, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    return b.EndObject()


def _attach_metadata(model: bytes, metadata: bytes, labels, labels_name: str) -> bytes:
    """``model`` with ``metadata`` as a new buffer named TFLITE_METADATA, and ``labels`` zipped onto the end."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model_t = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buffer_t = schema.BufferT()
    buffer_t.data = np.frombuffer(metadata, dtype=np.uint8)
    model_t.buffers.append(buffer_t)
    entry = schema.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(model_t.buffers) - 1
    model_t.metadata = (model_t.metadata or []) + [entry]
    mb = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    mb.Finish(model_t.Pack(mb), file_identifier=b"TFL3")
    out = io.BytesIO()
    out.write(bytes(mb.Output()))
    if labels is not None:
        with zipfile.ZipFile(out, "a") as archive:
            archive.writestr(labels_name, "\n".join(labels) + "\n")
    return out.getvalue()


# --- the dtype paths ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_dtype_path_gives_probabilities_that_agree_with_keras(tiny_models, tmp_path, variant):
    clf = Classifier(model_copy(tiny_models, variant, tmp_path))
    in_dtype, out_dtype = VARIANTS[variant]
    assert (str(clf.input_dtype), str(clf.output_dtype)) == (in_dtype, out_dtype)
    assert clf.input_size == SIZE and clf.labels == LABELS
    x_eval, y_eval = eval_images()
    keras_probs = np.load(tiny_models / "keras_probs.npy")
    probs = np.stack([clf.probabilities_from_input(x) for x in x_eval])
    assert probs.dtype == np.float32 and probs.shape == (len(x_eval), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=0.02)
    assert (keras_probs.argmax(1) == y_eval).mean() >= 0.9  # the model learned something worth comparing
    agreement = (probs.argmax(1) == keras_probs.argmax(1)).mean()
    if variant in ("float32", "uint8_in", "logits"):
        np.testing.assert_allclose(probs, keras_probs, atol=1e-4)
        assert agreement == 1.0
    else:
        assert np.abs(probs - keras_probs).max() < 0.12, "quantized probabilities drifted from the float model"
        assert agreement >= 0.9


def test_logits_output_is_turned_into_probabilities_with_softmax(tiny_models, tmp_path):
    clf = Classifier(model_copy(tiny_models, "logits", tmp_path))
    x_eval, _ = eval_images(2)
    logits = np.load(tiny_models / "keras_logits.npy")[: len(x_eval)]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    got = np.stack([clf.probabilities_from_input(x) for x in x_eval])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_int8_fast_path_equals_general_quantization():
    x = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    fast = (x ^ np.uint8(0x80)).view(np.int8)
    assert np.array_equal(fast, _quantize(x, 1.0, -128, np.int8))
    assert fast.min() == -128 and fast.max() == 127


def test_quantized_input_parameters_are_applied(tiny_models, tmp_path):
    """The narrow-calibrated model's input scale is not 1: feeding raw pixels without quantizing would be wrong."""
    clf = Classifier(model_copy(tiny_models, "int8_narrow", tmp_path))
    scale, zero = clf._input_quant
    assert scale != 1.0
    x_eval, _ = eval_images(4)
    right = np.stack([clf.probabilities_from_input(x) for x in x_eval])
    keras_probs = np.load(tiny_models / "keras_probs.npy")[: len(x_eval)]
    assert np.abs(right - keras_probs).max() < 0.15


@pytest.mark.parametrize("bad", ["small", "float", "grey", "list"])
def test_wrong_size_or_dtype_frame_on_the_hot_path_is_a_clear_error(tiny_models, tmp_path, bad):
    clf = Classifier(model_copy(tiny_models, "int8", tmp_path))
    w, h = SIZE
    frame = {"small": np.zeros((h - 1, w, 3), np.uint8), "float": np.zeros((h, w, 3), np.float32),
             "grey": np.zeros((h, w), np.uint8), "list": [[0, 0, 0]]}[bad]
    with pytest.raises(ImageError) as info:
        clf.probabilities_from_input(frame)
    assert f"({h}, {w}, 3)" in str(info.value) and "\n" not in str(info.value)


def test_metadata_reader_reads_labels_size_and_normalisation(tiny_models):
    data = embed_metadata((tiny_models / "int8.tflite").read_bytes(), ["a cat", "dog", "ünïcode"], (24, 20),
                          mean=127.5, std=127.5)
    info = read_model_info(data)
    assert info.has_metadata and info.labels == ["a cat", "dog", "ünïcode"]
    assert info.image_size == (24, 20) and info.color_space == "RGB"
    assert info.mean == [127.5] and info.std == [127.5]
    assert info.name == "tiny test classifier" and info.labels_file == "labels.txt"
    bare = read_model_info((tiny_models / "int8.tflite").read_bytes())
    assert not bare.has_metadata and bare.labels is None
