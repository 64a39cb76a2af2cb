"""An exported model works in MediaPipe Tasks' ImageClassifier, a consumer of the standard TFLite Model Metadata
that shares no code with edgeclf: it must find the labels in the file and agree with edgeclf's runtime on top-1.

MediaPipe runs in its own venv (.venvs/mediapipe, ``pip install mediapipe``); both sides get the same decoded
uint8 pixels (edgeclf's preprocessing, saved as .npy at the model's input size, so MediaPipe's resize is a no-op).
MediaPipe reads uint8 and float32 input tensors only ("Requested one of these types: uint8/float32"), so
``--io int8`` models are not part of this check.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeclf.manifest import load_splits
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.preprocess import load_image

from tests.fixtures.images import synthetic_image

SCRIPT = r'''
import io, json, sys, zipfile
import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision
from mediapipe.tasks.metadata import metadata_schema_py_generated as meta_fb, schema_py_generated as tfl_fb

def read_metadata(data):
    """The metadata via MediaPipe's own copies of the generated TFLite and metadata schema code."""
    model = tfl_fb.ModelT.InitFromObj(tfl_fb.Model.GetRootAsModel(data, 0))
    entry = [m for m in model.metadata if m.name.decode() == "TFLITE_METADATA"][0]
    buf = bytes(model.buffers[entry.buffer].data)
    assert meta_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buf, 0)
    md = meta_fb.ModelMetadataT.InitFromObj(meta_fb.ModelMetadata.GetRootAsModelMetadata(buf, 0))
    tensor = md.subgraphMetadata[0].inputTensorMetadata[0]
    props, norm = tensor.content.contentProperties, tensor.processUnits[0].options
    out = md.subgraphMetadata[0].outputTensorMetadata[0]
    return {"name": md.name.decode(), "color_space": int(props.colorSpace),
            "default_size": [props.defaultSize.width, props.defaultSize.height],
            "mean": [float(x) for x in norm.mean], "std": [float(x) for x in norm.std],
            "label_files": [[f.name.decode(), int(f.type)] for f in out.associatedFiles]}

model_path, images_path = sys.argv[1], sys.argv[2]
data = open(model_path, "rb").read()
with zipfile.ZipFile(io.BytesIO(data)) as zf:
    labels_txt = zf.read("labels.txt").decode().splitlines()
options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model_path), max_results=-1)
top1, scores = [], []
with vision.ImageClassifier.create_from_options(options) as classifier:
    for image in np.load(images_path):
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
        categories = result.classifications[0].categories
        top1.append(categories[0].category_name)
        scores.append({c.category_name: float(c.score) for c in categories})
print(json.dumps({"metadata": read_metadata(data), "labels_txt": labels_txt, "top1": top1, "scores": scores,
                  "version": mp.__version__}))
'''


def mediapipe_classify(python: Path, model: Path, images: np.ndarray, tmp_path: Path) -> dict:
    script, arrays = tmp_path / "mp_classify.py", tmp_path / f"{model.stem}-images.npy"
    script.write_text(SCRIPT)
    np.save(arrays, images)
    done = subprocess.run([str(python), str(script), str(model), str(arrays)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_on_test_split(python, model: Path, run_dir: Path, tmp_path) -> tuple[float, dict, list[str], int]:
    """:func:`compare` on every image of the run's recorded test split: (agreement, MediaPipe's output, labels, n)."""
    splits = load_splits(run_dir)
    size = Classifier(model).input_size
    images = np.stack([load_image(Path(splits.root) / e.path, size) for e in splits.files("test")])
    return (*compare(python, model, images, tmp_path), len(images))


def compare(python, model: Path, images: np.ndarray, tmp_path) -> tuple[float, dict, list[str]]:
    clf = Classifier(model)
    ours = [clf.labels[int(np.argmax(clf.probabilities_from_input(x)))] for x in images]
    theirs = mediapipe_classify(python, model, images, tmp_path)
    agreement = float(np.mean([a == b for a, b in zip(ours, theirs["top1"])]))
    return agreement, theirs, clf.labels


@pytest.mark.slow
@pytest.mark.parametrize("fmt, io", [("float32", "uint8"), ("float16", "uint8"), ("dynamic", "uint8"),
                                     ("int8", "uint8"), ("int8", "float32")])
def test_mediapipe_reads_tiny_exports_and_agrees_with_the_runtime(mediapipe_python, tiny_tflite, tmp_path, fmt, io):
    model = tiny_tflite(fmt, io)
    images = np.stack([load_image(synthetic_image(i % 2, 300 + i), (96, 96)) for i in range(12)])
    agreement, theirs, labels = compare(mediapipe_python, model, images, tmp_path)
    meta = theirs["metadata"]
    assert theirs["labels_txt"] == labels and meta["label_files"] == [["labels.txt", 2]]  # TENSOR_AXIS_LABELS
    assert meta["color_space"] == 1 and meta["default_size"] == [96, 96]  # RGB, 96x96
    assert (meta["mean"], meta["std"]) == (([0.0], [1.0]) if io == "float32" else ([127.5], [127.5]))
    assert set(theirs["top1"]) <= set(labels)  # MediaPipe named the classes from the embedded labels
    assert agreement == 1.0
    # same pixels in, same model: MediaPipe's scores match edgeclf's probabilities closely
    clf = Classifier(model)
    for x, s in zip(images, theirs["scores"]):
        ours = clf.probabilities_from_input(x)
        assert max(abs(ours[i] - s[label]) for i, label in enumerate(labels)) < 0.02


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("name", ["model_int8.tflite", "model_float32.tflite"])
def test_mediapipe_agrees_with_the_runtime_on_the_real_test_split(mediapipe_python, real_export, real_run, tmp_path,
                                                                  name):
    agreement, theirs, labels, n = compare_on_test_split(mediapipe_python, real_export / name, real_run, tmp_path)
    assert n >= 100
    assert theirs["labels_txt"] == labels == ["cats", "dogs"]
    assert agreement >= 0.99, f"MediaPipe {theirs['version']} agrees on only {agreement:.2%} of {n}"
