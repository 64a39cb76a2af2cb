"""The runtime on what `edgeclf export` really writes (tests/fixtures/models.py): every format and, for int8, every io
type. The tiny run's weights are random, so accuracy means nothing here; what must hold is that the runtime reads the
embedded labels and contract, and that the three io types of the SAME int8 model give the same probabilities — they
differ only in how the runtime quantizes the input and dequantizes the output, which is exactly what is under test."""

from __future__ import annotations

import numpy as np
import pytest

from edgeclf.runtime import Classifier
from edgeclf.runtime.preprocess import load_image
from tests.fixtures.images import synthetic_image

EXPECTED_IO = {("float32", "uint8"): ("uint8", "float32"), ("float16", "uint8"): ("uint8", "float32"),
               ("dynamic", "uint8"): ("uint8", "float32"), ("int8", "uint8"): ("uint8", "uint8"),
               ("int8", "int8"): ("int8", "int8"), ("int8", "float32"): ("float32", "float32")}


def frames(size, n=12):
    return [load_image(synthetic_image(i % 2, 4000 + i, (120, 90)), size) for i in range(n)]


@pytest.mark.parametrize("fmt, io", sorted(EXPECTED_IO))
def test_every_exported_format_loads_with_its_labels_and_gives_probabilities(tiny_tflite, fmt, io):
    clf = Classifier(tiny_tflite(fmt, io))
    assert clf.labels == ["cats", "dogs"] and "embedded" in clf.labels_source
    assert (str(clf.input_dtype), str(clf.output_dtype)) == EXPECTED_IO[(fmt, io)]
    assert clf.input_size == (96, 96) and clf.info.image_size == (96, 96)
    for x in frames(clf.input_size, 4):
        p = clf.probabilities_from_input(x)
        assert p.dtype == np.float32 and p.shape == (2,) and abs(float(p.sum()) - 1) < 0.02


def test_int8_io_types_agree_with_each_other(tiny_tflite):
    models = {io: Classifier(tiny_tflite("int8", io)) for io in ("uint8", "int8", "float32")}
    xs = frames(models["uint8"].input_size)
    probs = {io: np.stack([clf.probabilities_from_input(x) for x in xs]) for io, clf in models.items()}
    for io in ("int8", "float32"):
        np.testing.assert_allclose(probs[io], probs["uint8"], atol=1 / 128)


def test_float_formats_agree_with_float32(tiny_tflite):
    reference = Classifier(tiny_tflite("float32"))
    xs = frames(reference.input_size)
    ref = np.stack([reference.probabilities_from_input(x) for x in xs])
    half = Classifier(tiny_tflite("float16"))
    np.testing.assert_allclose(np.stack([half.probabilities_from_input(x) for x in xs]), ref, atol=2e-2)
