"""Frame sources and the live loop in-process: the Pi camera configuration (against a stand-in for the picamera2
module, since no camera is attached here), the folder replay, latency statistics and annotation."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edgeclf.errors import MissingDependencyError, UsageError
from edgeclf.runtime.annotate import annotate
from edgeclf.runtime.latency import LatencyStats
from edgeclf.runtime.live import JsonLinesSink, run_live
from edgeclf.runtime.sources import FolderSource, PiCameraSource, SourceError, open_source
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import SIZE, model_copy, tiny_models  # noqa: F401


class FakePicamera2:
    """Behaves like picamera2.Picamera2 as documented: "BGR888" arrays are (H, W, 3) in R, G, B byte order."""

    instances: list = []

    def __init__(self, fail_after=None):
        self.config = None
        self.started = False
        self.closed = False
        self.captured = 0
        self.fail_after = fail_after
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, buffer_count=None):
        return {"main": dict(main), "buffer_count": buffer_count}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, stream="main"):
        if self.fail_after is not None and self.captured >= self.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        self.captured += 1
        w, h = self.config["main"]["size"]
        return np.asarray(synthetic_image(1, self.captured, (w, h)))  # blue squares, already RGB

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    FakePicamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return module


def test_picamera_is_asked_for_rgb_frames_at_the_model_input_size(fake_picamera2, tiny_models, tmp_path):
    from edgeclf.runtime import Classifier

    clf = Classifier(model_copy(tiny_models, "int8", tmp_path))
    source = open_source("picamera", clf.input_size)
    assert isinstance(source, PiCameraSource) and source.live
    cam = FakePicamera2.instances[0]
    assert cam.config["main"] == {"size": clf.input_size, "format": "BGR888"}  # BGR888 = R,G,B bytes in memory
    result = run_live(clf, source, [], max_frames=5)
    assert result.stats.frames == 5 and result.reason == "max-frames"
    assert cam.closed and result.stats.summary()["stages"]["preprocess"]["p50"] < 5  # no resize ran


def test_picamera_failure_mid_run_is_a_source_error_with_stats(fake_picamera2, tiny_models, tmp_path, capsys):
    from edgeclf.runtime import Classifier

    clf = Classifier(model_copy(tiny_models, "int8", tmp_path))
    source = open_source("picamera", clf.input_size)
    FakePicamera2.instances[0].fail_after = 3
    result = run_live(clf, source, [JsonLinesSink()], max_frames=10)
    assert result.reason == "source-error" and isinstance(result.error, SourceError)
    assert "picamera stopped delivering frames" in str(result.error)
    assert result.stats.frames == 3 and len(capsys.readouterr().out.strip().splitlines()) == 3
    assert FakePicamera2.instances[0].closed


def test_missing_picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(MissingDependencyError, match="python3-picamera2"):
        open_source("picamera", SIZE)


def test_folder_source_replays_at_model_size_and_rewinds(tmp_path):
    for i in range(3):
        synthetic_image(i, i, (50, 40)).save(tmp_path / f"{i}.png")
    src = FolderSource(tmp_path, SIZE)
    frames = [src.read() for _ in range(3)]
    assert all(f.shape == (SIZE[1], SIZE[0], 3) and f.dtype == np.uint8 for f in frames)
    assert src.read() is None and src.rewind()
    np.testing.assert_array_equal(src.read(), frames[0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        FolderSource(tmp_path / "empty", SIZE)


def test_latency_summary_percentiles():
    stats = LatencyStats()
    for ms in range(1, 11):
        stats.add(capture=ms, preprocess=0.5, inference=2 * ms)
    s = stats.summary()
    assert s["frames"] == 10
    assert s["stages"]["capture"] == {"mean": 5.5, "p50": 5.5, "p90": 9.1, "max": 10.0}
    assert s["stages"]["inference"]["p90"] == 18.2
    assert "p90" in stats.table()


def test_annotation_enlarges_small_frames_and_draws_text():
    frame = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    img = annotate(frame, "cats 97%", "12.0 fps")
    assert img.width == 480 and img.height == round(SIZE[1] * 480 / SIZE[0])
    arr = np.asarray(img)
    assert arr[: img.height // 4, : img.width // 2].max() == 255  # white text on the caption box
    assert arr[-10:, -10:].max() == 0  # the rest of the frame is untouched
