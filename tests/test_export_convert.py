"""Conversion of the tiny run to every format and io type: what is inside each file, checked by reading it back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeclf.manifest import load_manifest
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.model_metadata import read_metadata
from edgeclf.runtime.preprocess import load_image

from tests.fixtures.images import synthetic_image
from tests.fixtures.models import run_export

FORMAT_IO = [("float32", "uint8"), ("float16", "uint8"), ("dynamic", "uint8"), ("int8", "uint8"), ("int8", "int8"),
             ("int8", "float32")]


def tensor_types(path) -> dict:
    from tensorflow.lite.python import schema_py_generated as fb

    names = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    graph = fb.Model.GetRootAsModel(path.read_bytes(), 0).Subgraphs(0)
    return {graph.Tensors(i).Name().decode(): names[graph.Tensors(i).Type()] for i in range(graph.TensorsLength())}


@pytest.mark.parametrize("fmt, io", FORMAT_IO)
def test_every_format_loads_in_the_runtime_with_embedded_labels(tiny_tflite, tiny_run, fmt, io):
    path = tiny_tflite(fmt, io)
    clf = Classifier(path)
    labels = load_manifest(tiny_run).labels
    assert clf.labels == labels and "embedded metadata" in clf.labels_source
    assert clf.input_size == (96, 96)
    assert str(clf.input_dtype) == (io if fmt == "int8" else "uint8")
    probs = clf.probabilities(synthetic_image(0, 7))
    assert probs.shape == (2,) and abs(float(probs.sum()) - 1) < 0.02


@pytest.mark.parametrize("io, expected", [("uint8", (1.0, 0)), ("int8", (1.0, -128))])
def test_int8_model_is_integer_only_and_takes_raw_pixels(tiny_tflite, io, expected):
    from edgeclf.export.convert import op_set, tensor_io

    data = tiny_tflite("int8", io).read_bytes()
    assert tensor_io(data)["input"]["quantization"] == expected  # raw 0..255 (or x-128) goes straight in
    types = set(tensor_types(tiny_tflite("int8", io)).values())
    assert types <= {"INT8", "UINT8", "INT32"}, types  # no float tensor anywhere: integer-only
    assert not any(op.startswith(("CAST", "DEQUANTIZE", "CUSTOM")) for op in op_set(data))


def test_float_formats_keep_uint8_input_and_only_builtin_ops(tiny_tflite):
    from edgeclf.export.convert import op_set, tensor_io

    for fmt in ("float32", "float16", "dynamic"):
        data = tiny_tflite(fmt).read_bytes()
        io = tensor_io(data)
        assert io["input"]["dtype"] == "uint8" and io["output"]["dtype"] == "float32"
        assert not any(op.startswith("CUSTOM") for op in op_set(data))
    # dynamic range keeps dense layers per-tensor: FULLY_CONNECTED v12 would not load in tflite-runtime 2.14
    assert [op for op in op_set(tiny_tflite("dynamic").read_bytes()) if op.startswith("FULLY_CONNECTED")] == \
        ["FULLY_CONNECTED/v9"]


def test_float32_export_matches_keras_on_the_same_pixels(tiny_tflite, tiny_run):
    from edgeclf.export.convert import load_keras_model

    model = load_keras_model(tiny_run / "model.keras")
    images = np.stack([load_image(synthetic_image(i % 2, 100 + i), (96, 96)) for i in range(6)])
    reference = np.asarray(model(images, training=False))
    clf = Classifier(tiny_tflite("float32"))
    ours = np.stack([clf.probabilities_from_input(x) for x in images])
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    f16 = Classifier(tiny_tflite("float16"))
    # float16 weights: within 4e-2 (was 2e-2 before temperature scaling; a fitted T < 1 is folded into the last Dense
    # layer and sharpens the tiny random model's logits, which scales float16's rounding error with them)
    np.testing.assert_allclose(np.stack([f16.probabilities_from_input(x) for x in images]), reference, atol=4e-2)


def test_sizes_shrink_as_expected(tiny_export):
    report = json.loads((tiny_export / "report.json").read_text())
    ratio = {m["format"]: m["size_ratio"] for m in report["models"]}
    assert ratio["float32"] == 1.0
    assert 0.45 < ratio["float16"] < 0.6  # half-size weights
    assert ratio["dynamic"] < 0.45 and ratio["int8"] < 0.45  # 8-bit weights (the tiny net is bias-heavy)


@pytest.mark.parametrize("fmt, io", FORMAT_IO)
def test_metadata_round_trips_through_the_runtime_reader(tiny_tflite, tiny_run, fmt, io):
    meta = read_metadata(tiny_tflite(fmt, io).read_bytes())
    assert meta["has_metadata"] and meta["labels"] == load_manifest(tiny_run).labels
    dtype = io if fmt == "int8" else "uint8"
    assert meta["input"] == {"height": 96, "width": 96, "channels": 3, "dtype": dtype, "color": "RGB",
                             "resize": "bilinear", "mean": 0.0 if dtype == "float32" else 127.5,
                             "std": 1.0 if dtype == "float32" else 127.5}
    assert meta["quantization"] == fmt and meta["io"] == (io if fmt == "int8" else "uint8")
    assert sorted(meta["associated_files"]) == ["edgeclf-model.json", "labels.txt"]


def test_metadata_read_by_an_independent_flatbuffer_parser(tiny_tflite):
    """Parse the file with TensorFlow's generated TFLite schema and the standard zip reader, not edgeclf's code."""
    import io
    import zipfile

    from tensorflow.lite.python import schema_py_generated as fb

    data = tiny_tflite("int8").read_bytes()
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    entry = [m for m in model.metadata if m.name == b"TFLITE_METADATA"]
    assert len(entry) == 1
    buffer = bytes(model.buffers[entry[0].buffer].data)
    assert buffer[4:8] == b"M001"  # the metadata schema's file identifier
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("labels.txt").decode().splitlines() == ["cats", "dogs"]
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
        assert json.loads(zf.read("edgeclf-model.json"))["format"] == "edgeclf.model/1"


def test_embedding_twice_replaces_the_metadata(tiny_tflite):
    from edgeclf.export.metadata import build_contract, embed_metadata

    data = tiny_tflite("float32").read_bytes()
    contract = build_contract(labels=["x", "y"], width=96, height=96, input_dtype="uint8", quantization="float32",
                              io_type="uint8")
    again = embed_metadata(data, contract, name="renamed", description="d")
    meta = read_metadata(again)
    assert meta["labels"] == ["x", "y"] and meta["name"] == "renamed"
    assert abs(len(again) - len(data)) < 2048  # replaced, not appended to


def test_export_at_another_image_size_reuses_the_weights(tiny_run, tmp_path):
    report = run_export(tiny_run, tmp_path / "e64", ("float32",), image_size=64, max_drop=100.0)
    assert report["input_size"] == [64, 64] and report["trained_input_size"] == [96, 96]
    clf = Classifier(tmp_path / "e64" / "model_float32.tflite")
    assert clf.input_size == (64, 64)
    assert read_metadata((tmp_path / "e64" / "model_float32.tflite").read_bytes())["input"]["width"] == 64
    # the same weights: float32 TFLite at 64 px equals the Keras model re-instantiated at 64 px
    from edgeclf.export.convert import load_keras_model, with_input

    keras64 = with_input(load_keras_model(tiny_run / "model.keras"), image_size=64)
    original = load_keras_model(tiny_run / "model.keras")
    for a, b in zip(keras64.get_weights(), original.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = load_image(synthetic_image(1, 5), (64, 64))
    np.testing.assert_allclose(clf.probabilities_from_input(x), np.asarray(keras64(x[None]))[0], atol=1e-4)
