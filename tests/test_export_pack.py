"""export/pack.py: the re-packed .tflite keeps every value, stores tensor data 16-byte aligned (schema's force_align)
and writes each equal zero-point vector once. Checked against a plain object-API re-pack of the same tree."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

from edgeclf.export.pack import pack_model
from edgeclf.runtime.preprocess import load_image

from tests.fixtures.images import synthetic_image
from tests.test_export_convert import FORMAT_IO

BUFFER_ALIGNMENT = 16  # schema.fbs: Buffer.data (force_align: 16)


def schema():
    from tensorflow.lite.python import schema_py_generated as fb

    return fb


def flatbuffer_of(path) -> bytes:
    """The flatbuffer part of an exported file (the metadata's zip archive follows it)."""
    data = path.read_bytes()
    return data[:data.index(b"PK\x03\x04")] if b"PK\x03\x04" in data else data


def plain_pack(data: bytes) -> bytes:
    """What the object API writes on its own: no alignment beyond the element size, every vector written anew."""
    fb = schema()
    tree = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    builder = flatbuffers.Builder(len(data))
    builder.Finish(tree.Pack(builder), b"TFL3")
    return bytes(builder.Output())


def compact_pack(data: bytes) -> bytes:
    fb = schema()
    return pack_model(fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0)))


def everything_in(data: bytes) -> dict:
    """Every value an interpreter reads from the model, through the generated reader (offsets not included)."""
    fb = schema()
    model = fb.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        q = t.Quantization()
        tensors.append((t.Name(), t.ShapeAsNumpy().tolist(), t.Type(), t.Buffer(),
                        None if q is None else (q.ScaleAsNumpy().tolist() if q.ScaleLength() else [],
                                                q.ZeroPointAsNumpy().tolist() if q.ZeroPointLength() else [],
                                                q.QuantizedDimension())))
    operators = [(graph.Operators(i).OpcodeIndex(), graph.Operators(i).InputsAsNumpy().tolist(),
                  graph.Operators(i).OutputsAsNumpy().tolist(), graph.Operators(i).BuiltinOptionsType())
                 for i in range(graph.OperatorsLength())]
    buffers = [model.Buffers(i).DataAsNumpy().tobytes() if model.Buffers(i).DataLength() else b""
               for i in range(model.BuffersLength())]
    metadata = [(model.Metadata(i).Name(), model.Metadata(i).Buffer()) for i in range(model.MetadataLength())]
    return {"tensors": tensors, "operators": operators, "buffers": buffers, "metadata": metadata,
            "inputs": graph.InputsAsNumpy().tolist(), "outputs": graph.OutputsAsNumpy().tolist()}


def zero_point_vectors(data: bytes) -> list[tuple[int, bytes]]:
    """(position in the file, contents) of every tensor's zero-point vector."""
    fb = schema()
    graph = fb.Model.GetRootAsModel(data, 0).Subgraphs(0)
    found = []
    for i in range(graph.TensorsLength()):
        q = graph.Tensors(i).Quantization()
        if q is not None and q.ZeroPointLength():
            found.append((q._tab.Vector(q._tab.Offset(10)), q.ZeroPointAsNumpy().tobytes()))
    return found


def run(data: bytes, images) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    rows = []
    for image in images:
        x = image if inp["dtype"] != np.int8 else (image.astype(np.int16) - 128).astype(np.int8)
        interpreter.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(rows)


@pytest.mark.parametrize("fmt, io", FORMAT_IO)
def test_compact_pack_keeps_every_value_and_every_answer(tiny_tflite, fmt, io):
    original = flatbuffer_of(tiny_tflite(fmt, io))
    plain, compact = plain_pack(original), compact_pack(original)
    assert everything_in(compact) == everything_in(plain) == everything_in(original)
    images = [load_image(synthetic_image(i % 2, 40 + i), (96, 96)) for i in range(3)]
    np.testing.assert_array_equal(run(compact, images), run(plain, images))


@pytest.mark.parametrize("fmt, io", FORMAT_IO)
def test_exported_tensor_data_is_16_byte_aligned(tiny_tflite, fmt, io):
    data = flatbuffer_of(tiny_tflite(fmt, io))
    model = schema().Model.GetRootAsModel(data, 0)
    starts = [model.Buffers(i)._tab.Vector(model.Buffers(i)._tab.Offset(4))
              for i in range(model.BuffersLength()) if model.Buffers(i).DataLength()]
    assert starts and all(start % BUFFER_ALIGNMENT == 0 for start in starts)
    plain = schema().Model.GetRootAsModel(plain_pack(data), 0)
    # The object API on its own does not align them (why pack.py exists); if it ever does, this module can go.
    assert any(plain.Buffers(i)._tab.Vector(plain.Buffers(i)._tab.Offset(4)) % BUFFER_ALIGNMENT
               for i in range(plain.BuffersLength()) if plain.Buffers(i).DataLength())


def test_equal_zero_point_vectors_are_stored_once_in_an_int8_export(tiny_tflite):
    original = flatbuffer_of(tiny_tflite("int8"))
    compact, plain = zero_point_vectors(compact_pack(original)), zero_point_vectors(plain_pack(original))
    assert [c for _, c in compact] == [c for _, c in plain]
    contents = {c for _, c in compact}
    per_channel = [c for _, c in compact if len(c) > 8]
    assert len(per_channel) > 20  # a per-channel quantized MobileNetV2: one vector per conv weight and bias
    assert len({pos for pos, _ in compact}) == len(contents)  # one stored vector per distinct content
    assert len({pos for pos, _ in plain}) == len(plain)  # the object API writes one per tensor
    saved = sum(len(c) for _, c in plain) - sum(len(c) for c in contents)
    buffers = schema().Model.GetRootAsModel(original, 0).BuffersLength()
    # Smaller by at least the zero points written once, less the padding that aligning tensor data may add.
    assert len(compact_pack(original)) <= len(plain_pack(original)) - saved + BUFFER_ALIGNMENT * buffers


def test_size_breakdown_counts_each_stored_vector_once(tiny_tflite):
    from benchmarks.consumers import int8_size_breakdown

    path = tiny_tflite("int8")
    parts = int8_size_breakdown(path)
    graph = schema().Model.GetRootAsModel(flatbuffer_of(path), 0).Subgraphs(0)
    per_tensor = sum(4 * q.ScaleLength() + 8 * q.ZeroPointLength()
                     for q in (graph.Tensors(i).Quantization() for i in range(graph.TensorsLength())) if q is not None)
    assert parts["file"] == path.stat().st_size
    assert 0 < parts["quant_params_stored"] < per_tensor  # shared zero-point vectors are counted as stored, once
    assert parts["int8_weights"] > parts["int32_biases"] > 0
    assert parts["int8_weights"] + parts["int32_biases"] + parts["quant_params_stored"] + parts["tensor_names"] \
        < parts["file"]
