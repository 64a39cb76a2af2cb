"""The metadata reader the runtime uses works on a Pi: no TensorFlow, no Keras, no edgeclf.export."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = r'''
import json, sys
for blocked in ("tensorflow", "keras", "edgeclf.export"):
    sys.modules[blocked] = None  # any import of them now raises ImportError
from edgeclf.runtime.model_metadata import read_metadata
meta = read_metadata(open(sys.argv[1], "rb").read())
loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and m.startswith(("tensorflow", "keras")))
print(json.dumps({"labels": meta["labels"], "input": meta["input"], "io": meta["io"], "loaded": loaded}))
'''


def test_read_metadata_needs_no_tensorflow(tiny_tflite):
    done = subprocess.run([sys.executable, "-c", CHECK, str(tiny_tflite("int8", "float32"))], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads(done.stdout)
    assert meta["labels"] == ["cats", "dogs"] and meta["io"] == "float32" and meta["loaded"] == []
    assert meta["input"]["dtype"] == "float32" and (meta["input"]["mean"], meta["input"]["std"]) == (0.0, 1.0)


def test_read_metadata_of_a_model_without_metadata_is_empty(tmp_path):
    from edgeclf.runtime.model_metadata import read_metadata
    from tensorflow.lite.python import schema_py_generated as fb
    import flatbuffers

    model = fb.ModelT()
    model.version = 3
    graph = fb.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = [], [], [], []
    model.subgraphs, model.buffers = [graph], [fb.BufferT()]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"TFL3")
    meta = read_metadata(bytes(builder.Output()))
    assert meta["labels"] is None and meta["input"] is None and not meta["has_metadata"]


def test_contract_packed_under_the_name_earlier_exports_used_is_still_read():
    from edgeclf.runtime.model_file import _contract

    assert _contract({"edgeclf.json": b'{"format": "edgeclf.model/1"}'}) == {"format": "edgeclf.model/1"}
    assert _contract({"edgeclf-model.json": b'{"new": 1}', "edgeclf.json": b'{"old": 1}'}) == {"new": 1}
    assert _contract({"edgeclf-model.json": b"{not json"}) is None and _contract({}) is None
