"""Frame sources for the live loop: Raspberry Pi camera, USB webcam, video file, image folder. Each yields a
:class:`Frame`: the picture people look at (uint8 RGB, its own size and aspect) and, where the source can give it
cheaply, the model's input already at its size. Sources raise SourceError when a live camera stops delivering.

The Pi camera runs two streams of the same exposure: "main" (640x480 by default) for display and "lores" at the
model's input size, so the ISP does the (squashing) model resize in hardware and no resize runs in Python. lores is
YUV420 (the only lores format before the Pi 5) and is converted with Pillow. Picamera2's names follow
libcamera/DRM fourcc conventions: its ``"BGR888"`` is laid out R, G, B in memory, so main asks for ``"BGR888"``.
Other sources give the display frame only; the loop classifies a resized copy through the one preprocessing path.
A folder replay decodes each file twice: as a picture, and with ``load_image`` exactly as ``edgeclf predict`` does.
picamera2 and OpenCV are imported only by the source that needs them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

from edgeclf.errors import EdgeclfError, ImageError, MissingDependencyError, UsageError

from .preprocess import list_images, load_image, load_picture

PICAMERA_INSTALL = ("sudo apt install python3-picamera2  (Raspberry Pi OS; create the virtual environment with "
                    "--system-site-packages so it can see it)")
OPENCV_INSTALL = 'pip install "edgeclf[camera]"  (OpenCV: opencv-python-headless)'
DISPLAY_SIZE = (640, 480)  # (width, height) of the Pi camera's display stream
DISPLAY_MAX_SIDE = 1280  # a replayed photo is shown at most this large (a 12 MP JPEG would be slow to re-encode)


class Frame(NamedTuple):
    """One captured frame: ``display`` (H, W, 3) uint8 RGB as captured; ``model`` the model input at its size when
    the source made it (Pi camera lores stream, folder replay), else None (the loop resizes ``display``)."""

    display: np.ndarray
    model: Optional[np.ndarray] = None


class SourceError(EdgeclfError):
    """The frame source failed mid-run (camera unplugged, folder removed) or could not be opened."""


class FrameSource:
    """Base class: ``read()`` returns the next :class:`Frame`, or None when a finite source (video, folder) is done."""

    name = "source"
    live = False  # a camera: frames are captured now, not replayed
    fps: float | None = None  # the source's nominal frame rate, when it has one

    def read(self) -> Frame | None:  # pragma: no cover - interface
        raise NotImplementedError

    def rewind(self) -> bool:
        """Start again from the first frame (for --loop); False when the source cannot."""
        return False

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_source(spec: str, size: tuple[int, int]) -> FrameSource:
    """``picamera`` | camera index (``0``) | video file | image folder → a FrameSource. ``size`` is the model's
    (width, height): the Pi camera and the folder replay deliver the model input at that size directly."""
    spec = str(spec)
    if spec.lower() in ("picamera", "picamera2", "pi"):
        return PiCameraSource(size)
    if spec.isdigit():
        return OpenCVSource(int(spec))
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, size)
    if path.is_file():
        return OpenCVSource(path)
    raise UsageError(f"--source {spec}: not found",
                     "use picamera, a camera index such as 0, a video file, or a folder of images")


class PiCameraSource(FrameSource):
    """Raspberry Pi camera through picamera2 (libcamera): a display stream and a model-size lores stream."""

    live = True

    def __init__(self, size: tuple[int, int], display: tuple[int, int] = DISPLAY_SIZE):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise MissingDependencyError("--source picamera (picamera2)", PICAMERA_INSTALL) from None
        self.name = "picamera"
        self.size = tuple(size)
        try:
            self._camera = Picamera2()
            config = self._camera.create_video_configuration(
                main={"size": tuple(display), "format": "BGR888"},
                lores={"size": self.size, "format": "YUV420"}, buffer_count=4)
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError when no camera is attached
            raise SourceError(f"--source picamera: cannot start the camera ({exc})",
                              "check the ribbon cable and that no other program uses the camera") from None

    def read(self) -> Frame:
        try:
            request = self._camera.capture_request()  # both streams of one exposure
            try:
                main, lores = request.make_array("main"), request.make_array("lores")
            finally:
                request.release()
        except Exception as exc:
            raise SourceError(f"picamera stopped delivering frames ({exc})", "check the camera cable") from None
        return Frame(main[:, :, :3], yuv420_to_rgb(lores, self.size))

    def close(self) -> None:
        try:
            self._camera.stop()
            self._camera.close()
        except Exception:  # closing a camera that already failed must not hide the original error
            pass


def yuv420_to_rgb(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """picamera2's YUV420 array, (H * 3/2, stride) with the U and V planes packed below Y, → (H, W, 3) RGB.
    Chroma is upsampled and converted by Pillow (full-range BT.601, what libcamera's sYCC video streams use)."""
    width, height = size
    flat = np.ascontiguousarray(array).reshape(-1)
    stride = array.shape[1]
    y_end = height * stride
    c_len = (height // 2) * (stride // 2)
    planes = [flat[:y_end].reshape(height, stride)[:, :width]]
    for start in (y_end, y_end + c_len):
        chroma = flat[start:start + c_len].reshape(height // 2, stride // 2)[:, : width // 2]
        planes.append(chroma)
    y, u, v = (Image.fromarray(np.ascontiguousarray(p)) for p in planes)
    merged = Image.merge("YCbCr", (y, u.resize(y.size, Image.Resampling.BILINEAR),
                                   v.resize(y.size, Image.Resampling.BILINEAR)))
    return np.asarray(merged.convert("RGB"))


class OpenCVSource(FrameSource):
    """USB webcam (an integer index) or a video file, through OpenCV; BGR is converted to RGB."""

    def __init__(self, target: int | os.PathLike):
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # our error says it better than its WARN lines
        try:
            import cv2
        except ImportError:
            what = "--source with a camera index" if isinstance(target, int) else "--source with a video file"
            raise MissingDependencyError(f"{what} (OpenCV)", OPENCV_INSTALL) from None
        self._cv2 = cv2
        self.live = isinstance(target, int)
        self.name = f"camera {target}" if self.live else str(target)
        self._target = target
        self._capture = cv2.VideoCapture(target if self.live else str(target))
        if not self._capture.isOpened():
            self._capture.release()
            if self.live:
                raise SourceError(f"--source {target}: camera {target} could not be opened",
                                  "check that it is plugged in (ls /dev/video*) and not used by another program")
            raise SourceError(f"--source {target}: OpenCV cannot read this video file",
                              "check the file, or convert it to MP4 (H.264) or MJPEG AVI")
        if self.live:  # a modest capture size: the model needs a few hundred pixels at most
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, 640)
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, 480)
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        self._frames = 0

    def read(self) -> Frame | None:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            if self.live:
                raise SourceError(f"{self.name} stopped delivering frames after {self._frames}",
                                  "was it unplugged? check the cable and ls /dev/video*")
            return None  # end of the video
        self._frames += 1
        if frame.ndim == 2:
            return Frame(self._cv2.cvtColor(frame, self._cv2.COLOR_GRAY2RGB))
        if frame.shape[2] == 4:
            return Frame(self._cv2.cvtColor(frame, self._cv2.COLOR_BGRA2RGB))
        return Frame(self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB))

    def rewind(self) -> bool:
        if self.live:
            return False
        return bool(self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0))

    def close(self) -> None:
        self._capture.release()


class FolderSource(FrameSource):
    """Replay a folder of images (recursive, sorted) as frames: the photo as it is (at most DISPLAY_MAX_SIDE) for
    display, and the model input decoded by the one preprocessing path, so a replay classifies exactly like
    ``edgeclf predict``. Unreadable files are skipped and counted."""

    def __init__(self, folder: os.PathLike, size: tuple[int, int]):
        self.folder = Path(folder)
        self.name = str(folder)
        self.size = tuple(size)
        self.files = list_images(self.folder)
        if not self.files:
            raise UsageError(f"--source {folder}: no images in this folder", "point it at a folder of .jpg/.png files")
        self._next = 0
        self.skipped: list[ImageError] = []

    def read(self) -> Frame | None:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            try:
                return Frame(load_picture(path, DISPLAY_MAX_SIDE), load_image(path, self.size))
            except ImageError as exc:
                if not self.folder.is_dir():
                    raise SourceError(f"--source {self.folder}: the folder disappeared during the run",
                                      "was the drive unmounted?") from None
                self.skipped.append(exc)
        return None

    def rewind(self) -> bool:
        self._next = 0
        return True


def pace(last_start: float, fps_limit: float | None, sleep=time.sleep) -> float:
    """Sleep so frames start at most ``fps_limit`` times a second; returns the new frame's start time. ``sleep``
    may return early (the live loop passes its stop event's ``wait``)."""
    now = time.perf_counter()
    if fps_limit:
        wait = last_start + 1.0 / fps_limit - now
        if wait > 0:
            sleep(wait)
            now = time.perf_counter()
    return now
