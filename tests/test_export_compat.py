"""Exported models need only builtin ops old enough for tflite-runtime 2.14, the standalone interpreter a 32-bit
Raspberry Pi OS gets: every format and io type loads and gives the same probabilities there as in ai-edge-litert.
(tflite-runtime 2.14 needs numpy < 2, so it runs in its own venv, .venvs/tflite214.)"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from edgeclf.runtime.preprocess import load_image

from tests.fixtures.images import synthetic_image
from tests.test_export_convert import FORMAT_IO

SCRIPT = r'''
import json, sys
import numpy as np
from tflite_runtime.interpreter import Interpreter
import tflite_runtime
images = np.load(sys.argv[2])
it = Interpreter(model_path=sys.argv[1])
it.allocate_tensors()
inp, out = it.get_input_details()[0], it.get_output_details()[0]
rows = []
for x in images:
    if inp["dtype"] == np.int8:
        x = (x.astype(np.int16) - 128).astype(np.int8)  # scale 1, zero point -128
    it.set_tensor(inp["index"], x[None].astype(inp["dtype"]))
    it.invoke()
    y = it.get_tensor(out["index"])[0].astype(np.float64)
    scale, zero = out["quantization"]
    rows.append(((y - zero) * scale if scale else y).tolist())
print(json.dumps({"version": tflite_runtime.__version__, "probs": rows}))
'''


@pytest.mark.slow
@pytest.mark.parametrize("fmt, io", FORMAT_IO)
def test_every_export_runs_in_tflite_runtime_2_14(tflite214_python, tiny_tflite, tmp_path, fmt, io):
    from edgeclf.runtime.classifier import Classifier

    model = tiny_tflite(fmt, io)
    images = np.stack([load_image(synthetic_image(i % 2, 500 + i), (96, 96)) for i in range(4)])
    script, arrays = tmp_path / "run214.py", tmp_path / "images.npy"
    script.write_text(SCRIPT)
    np.save(arrays, images)
    done = subprocess.run([str(tflite214_python), str(script), str(model), str(arrays)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["version"] == "2.14.0"
    clf = Classifier(model)  # ai-edge-litert in this venv
    ours = np.stack([clf.probabilities_from_input(x) for x in images])
    # Dynamic-range ops quantize activations at run time and the two interpreters' hybrid kernels differ (XNNPACK in
    # ai-edge-litert 2.3), so only that format gets a loose tolerance; every other format must match exactly.
    np.testing.assert_allclose(np.asarray(result["probs"]), ours, atol=0.1 if fmt == "dynamic" else 1e-5)
