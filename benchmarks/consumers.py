"""Exported models in other consumers, over a run's whole test split, plus where the int8 file's bytes go.

The tests make these checks on a few images (tests/test_mediapipe_export.py, tests/test_export_compat.py); this runs
the same subprocess scripts on every test image, for the numbers recorded in benchmarks/results/export-*.json:

* MediaPipe Tasks ImageClassifier (its own venv): top-1 agreement with edgeclf's runtime, labels read from the file.
* tflite-runtime 2.14 (its own venv, numpy < 2): top-1 agreement with ai-edge-litert, default and builtin kernels.
* The int8 file's byte budget: weights, biases, quantization parameters as stored, tensor names.

Usage (from the repository root, after the test suite has created .venvs/)::

    python -m benchmarks.consumers RUN_DIR EXPORT_DIR [EXPORT_DIR ...] > consumers.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeclf.manifest import load_splits
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.preprocess import load_image

from tests.fixtures.models import VENVS  # where the test suite creates the MediaPipe and tflite-runtime venvs



def test_images(run_dir: Path, size: tuple[int, int]) -> np.ndarray:
    splits = load_splits(run_dir)
    return np.stack([load_image(Path(splits.root) / e.path, size) for e in splits.files("test")])


def _subprocess_json(python: Path, script: str, *args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.py"
        path.write_text(script)
        done = subprocess.run([str(python), str(path), *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def mediapipe_agreement(model: Path, images: np.ndarray, arrays: Path) -> tuple[float, str]:
    from tests.test_mediapipe_export import SCRIPT

    clf = Classifier(model)
    ours = [clf.labels[int(np.argmax(clf.probabilities_from_input(x)))] for x in images]
    theirs = _subprocess_json(VENVS / "mediapipe" / "bin" / "python", SCRIPT, model, arrays)
    return float(np.mean([a == b for a, b in zip(ours, theirs["top1"])])), theirs["version"]


def tflite214_agreement(model: Path, arrays: Path) -> dict:
    from tests.test_export_compat import SCRIPT

    old = _subprocess_json(VENVS / "tflite214" / "bin" / "python", SCRIPT, model, arrays)
    new = _subprocess_json(Path(sys.executable), SCRIPT, model, arrays)
    assert old["version"] == "2.14.0", old["version"]

    def agree(key):
        return float(np.mean(np.argmax(old[key], 1) == np.argmax(new[key], 1)))

    return {"default (XNNPACK)": agree("AUTO"), "builtin kernels": agree("BUILTIN_WITHOUT_DEFAULT_DELEGATES")}


def int8_size_breakdown(model: Path) -> dict:
    """Bytes of the flatbuffer by what they hold; a vector shared by many tensors counts once (as stored)."""
    from tensorflow.lite.python import schema_py_generated as fb

    data = model.read_bytes()
    root = fb.Model.GetRootAsModel(data, 0)
    graph = root.Subgraphs(0)
    weights = biases = names = 0
    quant: dict[int, int] = {}  # vector position -> bytes
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        names += len(tensor.Name() or b"")
        size = root.Buffers(tensor.Buffer()).DataLength()
        if tensor.Type() == fb.TensorType.INT8:
            weights += size
        elif tensor.Type() == fb.TensorType.INT32:
            biases += size
        q = tensor.Quantization()
        if q is not None:
            for field, length, width in ((8, q.ScaleLength(), 4), (10, q.ZeroPointLength(), 8)):
                if length:
                    quant[q._tab.Vector(q._tab.Offset(field))] = length * width
    return {"file": len(data), "int8_weights": weights, "int32_biases": biases,
            "quant_params_stored": sum(quant.values()), "tensor_names": names}


def main(run_dir: str, *export_dirs: str) -> dict:
    run = Path(run_dir)
    result: dict = {"mediapipe_top1_agreement_with_edgeclf_runtime": {},
                    "tflite_runtime_2_14_top1_agreement_with_ai_edge_litert": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for folder in map(Path, export_dirs):
            for model in sorted(folder.glob("*.tflite")):
                images = test_images(run, Classifier(model).input_size)
                arrays = Path(tmp) / f"{images.shape[1]}.npy"
                np.save(arrays, images)
                key = f"{folder.name}/{model.name}"
                agreement, version = mediapipe_agreement(model, images, arrays)
                result["mediapipe_top1_agreement_with_edgeclf_runtime"].update(
                    {"mediapipe": version, "images": len(images), key: agreement})
                result["tflite_runtime_2_14_top1_agreement_with_ai_edge_litert"].update(
                    {"images": len(images), key: tflite214_agreement(model, arrays)})
                print(f"{key}: mediapipe {agreement:.3f}", file=sys.stderr)
        first = Path(export_dirs[0])
        result["int8_size_breakdown_bytes"] = {**int8_size_breakdown(first / "model_int8.tflite"),
                                               "float32_file": (first / "model_float32.tflite").stat().st_size}
    return result


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(json.dumps(main(*sys.argv[1:]), indent=2))
