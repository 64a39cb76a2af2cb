"""Frame sources and the live loop in-process: the Pi camera configuration (against a stand-in for the picamera2
module, since no camera is attached here), the folder replay, latency statistics and annotation."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edgeclf.errors import MissingDependencyError, UsageError
from edgeclf.runtime.annotate import annotate
from edgeclf.runtime.latency import FrameTimings
from edgeclf.runtime.live import run_live
from edgeclf.runtime.preprocess import load_image
from edgeclf.runtime.sinks import JsonLinesSink
from edgeclf.runtime.sources import FolderSource, PiCameraSource, SourceError, open_source
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import SIZE, model_copy, tiny_models  # noqa: F401


class FakeRequest:
    """picamera2's CompletedRequest: both streams of one exposure, as picamera2's make_array lays them out."""

    def __init__(self, camera, index):
        self.camera, self.index, self.released = camera, index, False

    def make_array(self, stream):
        w, h = self.camera.config[stream]["size"]
        rgb = synthetic_image(1, self.index, (w, h))  # blue squares, the same scene in both streams
        if stream == "main":
            return np.asarray(rgb)  # "BGR888": (H, W, 3) in R, G, B byte order
        return yuv420_array(rgb, stride=w + 32)  # "YUV420": (H * 3/2, stride), U and V packed below Y

    def release(self):
        self.released = True


def yuv420_array(img, stride):
    """An RGB picture as libcamera's planar YUV420 buffer with padded rows, reshaped like picamera2 does."""
    w, h = img.size
    y, u, v = (np.asarray(p) for p in img.convert("YCbCr").split())
    buf = np.zeros(h * stride * 3 // 2, dtype=np.uint8)
    buf[: h * stride].reshape(h, stride)[:, :w] = y
    c_len = (h // 2) * (stride // 2)
    for start, plane in ((h * stride, u), (h * stride + c_len, v)):
        buf[start:start + c_len].reshape(h // 2, stride // 2)[:, : w // 2] = plane[::2, ::2]
    return buf.reshape(h * 3 // 2, stride)


class FakePicamera2:
    """Behaves like picamera2.Picamera2 as documented (create_video_configuration, capture_request, make_array)."""

    instances: list = []

    def __init__(self, fail_after=None):
        self.config = None
        self.started = False
        self.closed = False
        self.captured = 0
        self.fail_after = fail_after
        self.requests: list = []
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, buffer_count=None):
        return {"main": dict(main), "lores": dict(lores), "buffer_count": buffer_count}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_request(self):
        if self.fail_after is not None and self.captured >= self.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        self.captured += 1
        self.requests.append(FakeRequest(self, self.captured))
        return self.requests[-1]

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


class Collect:
    """A sink that keeps what it is shown."""

    def __init__(self):
        self.frames, self.results = [], []

    def on_frame(self, frame, result):
        self.frames.append(frame)
        self.results.append(result)

    def close(self):
        pass


def test_picamera_shows_the_main_stream_and_classifies_the_lores_stream(fake_picamera2, tiny_models, tmp_path):
    from edgeclf.runtime import Classifier

    clf = Classifier(model_copy(tiny_models, "int8", tmp_path))
    source = open_source("picamera", clf.input_size)
    assert isinstance(source, PiCameraSource) and source.live
    cam = FakePicamera2.instances[0]
    assert cam.config["main"] == {"size": (640, 480), "format": "BGR888"}  # BGR888 = R,G,B bytes in memory
    assert cam.config["lores"] == {"size": clf.input_size, "format": "YUV420"}
    seen = Collect()
    result = run_live(clf, source, [seen], max_frames=5)
    assert result.stats.frames == 5 and result.reason == "max-frames"
    assert all(r.released for r in cam.requests)  # every request goes back to the camera
    assert seen.frames[0].shape == (480, 640, 3) and seen.results[0]["display_size"] == [640, 480]
    assert cam.closed and result.stats.summary()["stages"]["preprocess"]["p50"] < 5  # no resize ran


def test_lores_yuv420_with_padded_rows_converts_to_the_picture(tiny_models):
    from edgeclf.runtime.sources import yuv420_to_rgb

    from PIL import Image

    yy, xx = np.mgrid[0:20, 0:24]
    smooth = np.stack([xx * 10, yy * 12, np.full_like(xx, 90)], axis=-1).astype(np.uint8)  # chroma varies slowly
    rgb = yuv420_to_rgb(yuv420_array(Image.fromarray(smooth), stride=64), (24, 20))
    assert rgb.shape == (20, 24, 3) and rgb.dtype == np.uint8
    error = np.abs(rgb.astype(int) - smooth.astype(int))
    assert error.mean() < 3 and error.max() < 24  # 2x2 chroma subsampling; the row padding never shows


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


def test_folder_source_shows_the_photo_classifies_the_model_input_and_rewinds(tmp_path):
    for i in range(3):
        synthetic_image(i, i, (50, 40)).save(tmp_path / f"{i}.png")
    src = FolderSource(tmp_path, SIZE)
    frames = [src.read() for _ in range(3)]
    assert all(f.display.shape == (40, 50, 3) and f.display.dtype == np.uint8 for f in frames)
    assert all(f.model.shape == (SIZE[1], SIZE[0], 3) and f.model.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[1].model, load_image(tmp_path / "1.png", SIZE))  # as predict sees it
    assert src.read() is None and src.rewind()
    np.testing.assert_array_equal(src.read().model, frames[0].model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images"):
        FolderSource(tmp_path / "empty", SIZE)


def test_latency_summary_percentiles():
    stats = FrameTimings()
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
