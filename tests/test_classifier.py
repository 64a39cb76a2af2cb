"""Classifier API: where labels come from, what each kind of source gives, top-k/threshold, batches, bad input."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from edgeclf.errors import ImageError, MissingDependencyError, ModelError, UsageError
from edgeclf.runtime import Classifier, Prediction, answer, find_interpreter, get_classes
from edgeclf.runtime.preprocess import load_image
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import LABELS, SIZE, embed_metadata, model_copy, tiny_models  # noqa: F401


@pytest.fixture
def int8_model(tiny_models, tmp_path):
    return model_copy(tiny_models, "int8", tmp_path / "m")


# --- labels --------------------------------------------------------------------------------------------------------

def test_labels_come_from_embedded_metadata(int8_model):
    clf = Classifier(int8_model)
    assert clf.labels == LABELS and "embedded" in clf.labels_source
    assert clf.backend.startswith("ai_edge_litert ")


def test_explicit_labels_override_embedded_ones(int8_model, tmp_path):
    assert Classifier(int8_model, labels=["x", "y", "z"]).labels == ["x", "y", "z"]
    (tmp_path / "l.txt").write_text("one\n\ntwo\nthree\n")
    assert Classifier(int8_model, labels=tmp_path / "l.txt").labels == ["one", "two", "three"]


def test_model_without_metadata_or_labels_names_the_fix(tiny_models, tmp_path):
    path = model_copy(tiny_models, "int8", tmp_path / "bare", metadata=False)
    with pytest.raises(ModelError) as info:
        Classifier(path)
    assert str(path) in str(info.value) and "model has no embedded labels; pass --labels FILE" in str(info.value)


def test_labels_file_beside_the_model_or_manifest_in_the_run_dir(tiny_models, tmp_path):
    path = model_copy(tiny_models, "int8", tmp_path / "run" / "export", metadata=False)
    (tmp_path / "run" / "edgeclf.json").write_text(json.dumps({
        "format": "edgeclf.run/1", "labels": ["p", "q", "r"], "input": {"height": 20, "width": 24}}))
    assert Classifier(path).labels == ["p", "q", "r"]
    (path.parent / "labels.txt").write_text("l1\nl2\nl3\n")
    assert Classifier(path).labels == ["l1", "l2", "l3"]


def test_wrong_number_of_labels_is_refused(int8_model):
    with pytest.raises(ModelError) as info:
        Classifier(int8_model, labels=["only", "two"])
    assert "2 labels for a model with 3 outputs" in str(info.value)


def test_metadata_naming_a_labels_file_that_is_not_packed_is_refused(tiny_models, tmp_path):
    data = embed_metadata((tiny_models / "int8.tflite").read_bytes(), LABELS, SIZE, pack_labels=False)
    (tmp_path / "m.tflite").write_bytes(data)
    with pytest.raises(ModelError) as info:
        Classifier(tmp_path / "m.tflite")
    assert "labels.txt" in str(info.value) and "not packed" in str(info.value)


# --- bad model files -----------------------------------------------------------------------------------------------

def test_missing_model(tmp_path):
    with pytest.raises(ModelError) as info:
        Classifier(tmp_path / "nope.tflite")
    assert "nope.tflite: model file not found" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"hello, I am text", b"PK\x03\x04" + bytes(100)])
def test_not_a_tflite_file(tmp_path, content):
    (tmp_path / "x.tflite").write_bytes(content)
    with pytest.raises(ModelError) as info:
        Classifier(tmp_path / "x.tflite", labels=LABELS)
    assert "x.tflite: not a TensorFlow Lite model" in str(info.value)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9, 0.99, 0.999])
def test_truncated_model_is_a_clear_error(int8_model, tmp_path, fraction):
    data = int8_model.read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: max(9, int(len(data) * fraction))])
    with pytest.raises(ModelError) as info:
        Classifier(cut, labels=LABELS)
    message = str(info.value)
    assert message.startswith(f"{cut}:") and "\n" not in message
    assert "truncated" in message or "not packed" in message


def test_directory_and_non_image_models(tiny_models, tmp_path):
    with pytest.raises(ModelError, match="is a directory"):
        Classifier(tmp_path)
    with pytest.raises(ModelError, match=r"expected an image input of shape \(1, H, W, 3\)"):
        Classifier(tiny_models / "vector_input.tflite", labels=["a", "b"])


# --- interpreters --------------------------------------------------------------------------------------------------

def test_tensorflow_fallback_gives_the_same_probabilities(int8_model, monkeypatch):
    pytest.importorskip("tensorflow")
    x = load_image(synthetic_image(2, 7), SIZE)
    litert = Classifier(int8_model).probabilities_from_input(x)
    monkeypatch.setenv("EDGECLF_INTERPRETER", "tensorflow")
    clf = Classifier(int8_model)
    assert clf.backend.startswith("tensorflow ")
    np.testing.assert_array_equal(clf.probabilities_from_input(x), litert)


def test_unknown_or_missing_forced_interpreter(monkeypatch):
    monkeypatch.setenv("EDGECLF_INTERPRETER", "onnx")
    with pytest.raises(UsageError, match="EDGECLF_INTERPRETER"):
        find_interpreter()
    try:
        import tflite_runtime  # noqa: F401
    except ImportError:
        monkeypatch.setenv("EDGECLF_INTERPRETER", "tflite_runtime")
        with pytest.raises(MissingDependencyError, match="pip install tflite-runtime"):
            find_interpreter()


def test_threads_must_be_positive(int8_model):
    with pytest.raises(UsageError, match="--threads"):
        Classifier(int8_model, num_threads=0)
    assert Classifier(int8_model, num_threads=2).num_threads == 2


# --- sources, top-k, threshold, batches --------------------------------------------------------------------------

def test_every_kind_of_source_gives_the_same_answer(int8_model, tmp_path):
    clf = Classifier(int8_model)
    img = synthetic_image(1, 3, (96, 80))
    img.save(tmp_path / "a.png")
    expected = clf.probabilities(tmp_path / "a.png")
    sources = [str(tmp_path / "a.png"), (tmp_path / "a.png").read_bytes(), img, np.asarray(img),
               io.BytesIO((tmp_path / "a.png").read_bytes())]
    for source in sources:
        np.testing.assert_array_equal(clf.probabilities(source), expected)
    np.testing.assert_array_equal(clf.probabilities_from_input(load_image(img, SIZE)), expected)


def test_classify_sorts_limits_and_thresholds(int8_model):
    clf = Classifier(int8_model)
    preds = clf.classify(synthetic_image(2, 11))
    assert [p.label for p in preds][0] == "green" and len(preds) == 3
    assert all(isinstance(p, Prediction) for p in preds)
    assert [p.score for p in preds] == sorted((p.score for p in preds), reverse=True)
    assert abs(sum(p.score for p in preds) - 1) < 0.02
    assert clf.classify(synthetic_image(2, 11), top_k=1) == preds[:1]
    above = clf.classify(synthetic_image(2, 11), threshold=preds[1].score)
    assert above == [p for p in preds if p.score >= preds[1].score]
    unknown = clf.classify(synthetic_image(2, 11), threshold=1.01)
    assert unknown == [Prediction("unknown", -1, preds[0].score)]
    with pytest.raises(UsageError):
        clf.classify(synthetic_image(2, 11), top_k=0)


def test_get_classes_and_the_unknown_answer_are_one_decision():
    probs = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    labels = ["a", "b", "c"]
    ranked = get_classes(probs, labels)
    assert [(p.label, p.index) for p in ranked] == [("b", 1), ("c", 2), ("a", 0)]
    assert get_classes(probs, labels, top_k=2, threshold=0.25) == ranked[:2]
    assert get_classes(probs, labels, threshold=0.7) == [Prediction("unknown", -1, ranked[0].score)]
    assert answer(ranked, None) == answer(ranked, 0.6) == ranked[0]
    assert answer(ranked, 0.61) == Prediction("unknown", -1, ranked[0].score) == get_classes(probs, labels, 1, 0.61)[0]


def test_classify_many_skips_and_reports_unreadable_files(int8_model, bad_images, tmp_path):
    clf = Classifier(int8_model)
    results = dict(clf.classify_many([bad_images["ok"].parent, tmp_path / "missing.jpg"], top_k=2))
    errors = {p.name for p, r in results.items() if isinstance(r, ImageError)}
    assert errors == {"zero.jpg", "notimage.jpg", "truncated.jpg", "corrupt.jpg", "missing.jpg"}
    good = {p.name: r for p, r in results.items() if not isinstance(r, ImageError)}
    assert set(good) == {"ok.jpg", "cmyk.jpg", "grey.png", "rgba.png", "palette.png", "grey16.png",
                         "exif_rotated.jpg"}
    assert all(len(r) == 2 for r in good.values())


def test_corrupt_image_is_an_image_error_naming_the_file(int8_model, bad_images):
    with pytest.raises(ImageError) as info:
        Classifier(int8_model).classify(bad_images["corrupt"])
    assert str(bad_images["corrupt"]) in str(info.value)


def test_odd_sized_and_greyscale_frames_are_resized(int8_model):
    clf = Classifier(int8_model)
    assert clf.probabilities(np.zeros((480, 640, 3), np.uint8)).shape == (3,)
    assert clf.probabilities(np.zeros((30, 30), np.uint8)).shape == (3,)
    with pytest.raises(ImageError, match="uint8"):
        clf.probabilities(np.zeros((30, 30, 3), np.float64))


def test_pil_image_in_another_mode(int8_model):
    clf = Classifier(int8_model)
    rgb = synthetic_image(0, 4)
    np.testing.assert_array_equal(clf.probabilities(rgb.convert("RGBA")), clf.probabilities(rgb))
    assert clf.probabilities(Image.new("L", (50, 40), 128)).shape == (3,)


def test_reads_the_metadata_that_edgeclf_export_writes(tiny_models, tmp_path):
    metadata = pytest.importorskip("edgeclf.export.metadata")
    contract = metadata.build_contract(labels=["rouge", "bleu", "vert"], width=SIZE[0], height=SIZE[1],
                                       input_dtype="int8", quantization="int8", io_type="int8")
    data = metadata.embed_metadata((tiny_models / "int8.tflite").read_bytes(), contract, name="tiny",
                                   description="interop")
    (tmp_path / "exported.tflite").write_bytes(data)
    clf = Classifier(tmp_path / "exported.tflite")
    assert clf.labels == ["rouge", "bleu", "vert"]
    assert clf.info.image_size == SIZE and clf.info.color_space == "RGB"
    assert clf.info.contract["format"] == "edgeclf.model/1"
    assert clf.classify(synthetic_image(1, 5))[0].label == "bleu"
