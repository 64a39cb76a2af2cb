"""Folder prediction decodes ahead: same answers, same order, errors in place, decoding overlapped with inference."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgeclf.errors import ImageError
from edgeclf.runtime import prefetch
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.preprocess import load_image
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import model_copy, tiny_models  # noqa: F401


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(23):
        synthetic_image(i % 3, 70 + i, (60 + 7 * (i % 5), 40 + 3 * i)).save(d / f"{i:02d}.jpg", quality=90)
    (d / "10_broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return d


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_order_pixels_and_errors_match_the_sequential_path(folder, workers):
    files = sorted(folder.iterdir())
    missing = ImageError(folder / "missing.jpg", "no such file or directory")
    items = files[:5] + [missing] + files[5:]
    got = list(prefetch.decode_ahead(items, (32, 24), workers=workers, depth=2))
    assert [item for item, _ in got] == items
    for item, x in got:
        if item is missing:
            assert x is missing
        elif item.name == "10_broken.jpg":
            assert isinstance(x, ImageError) and "10_broken.jpg" in str(x)
        else:
            assert np.array_equal(x, load_image(item, (32, 24)))  # the one preprocessing path, bit for bit


def test_the_next_image_is_decoded_while_the_consumer_works(folder, monkeypatch):
    """While the consumer holds image 0, images 1 and 2 get decoded (the overlap), but not more than depth ahead."""
    started: list[str] = []
    real = prefetch.load_image
    lock = threading.Lock()

    def recording(item, size):
        with lock:
            started.append(item.name)
        return real(item, size)

    monkeypatch.setattr(prefetch, "load_image", recording)
    files = sorted(folder.glob("*.jpg"))
    stream = prefetch.decode_ahead(files, (32, 24), workers=2, depth=2)
    next(stream)  # the consumer now "runs inference" on image 0
    deadline = threading.Event()
    for _ in range(100):
        with lock:
            if len(started) >= 3:
                break
        deadline.wait(0.02)
    with lock:
        assert files[1].name in started and files[2].name in started
        assert len(started) <= 3 + 1  # bounded: depth waiting + the one handed out (+ one in flight)
    stream.close()  # stopping early cancels what nobody will read


def test_classify_many_gives_the_answers_of_classify(tiny_models, tmp_path, folder):
    clf = Classifier(model_copy(tiny_models, "int8", tmp_path / "m"))
    expected = []
    for path in sorted(folder.glob("*.jpg")):
        try:
            expected.append((path, clf.classify(path, top_k=2)))
        except ImageError as exc:
            expected.append((path, type(exc)))
    got = [(path, preds if isinstance(preds, list) else type(preds))
           for path, preds in clf.classify_many([folder], top_k=2, workers=2)]
    assert got == expected


def test_default_decoders_leave_the_interpreter_its_cores(monkeypatch):
    from edgeclf.runtime import prefetch

    for cores, workers in ((1, 1), (2, 1), (4, 2), (8, 4)):
        monkeypatch.setattr(prefetch, "usable_cores", lambda c=cores: c)
        assert prefetch.default_workers() == workers
