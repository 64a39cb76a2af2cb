"""Outputs of the live loop ("sinks"): objects with ``on_frame(frame, result)`` and ``close()``.

JSON lines, a status line, an OpenCV window, the web feed, a recording, and answer changes sent to MQTT, a URL or a
command (:mod:`.notify`). ``frame`` is the display picture (RGB, its own size), ``result`` the loop's per-frame dict.
:func:`open_sinks` builds the set a command line asks for and closes what it opened when one of them fails to start.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from edgeclf.errors import MissingDependencyError, UsageError
from edgeclf.fsutil import check_writable_dir

from .annotate import annotate, caption
from .notify import DEFAULT_HOLD, CommandSink, MqttSink, WebhookSink
from .sources import OPENCV_INSTALL


class StopLoop(Exception):
    """Raised by a sink to end the loop normally (e.g. the display window was closed)."""


def render(frame, result: dict):
    """The annotated frame the window and the recording show (the web page draws its own overlay)."""
    detail = (f"{result['fps']:.1f} fps  inference {result['latency_ms']['inference']:.1f} ms  "
              f"frame {result['frame']}")
    return annotate(frame, caption(result["label"], result["score"]), detail)


@dataclass
class SinkOptions:
    """What the command line asked for."""

    headless: bool = False
    quiet: bool = False
    display: bool = False
    serve: str | None = None
    record: str | None = None
    record_fps: float = 10.0
    stream_fps: float | None = None
    mqtt: str | None = None
    mqtt_discovery: str | None = None  # Home Assistant's discovery prefix
    webhook: str | None = None
    on_change: str | None = None
    hold: int = DEFAULT_HOLD


def open_sinks(options: SinkOptions, announce=None) -> list:
    """The sinks for ``options``; if one cannot start, the ones already open are closed before the error rises.
    ``announce(text)`` is told where the web feed is."""
    sinks: list = []
    try:
        if options.headless:
            sinks.append(JsonLinesSink())
        elif not options.quiet:
            sinks.append(StatusSink())
        if options.display:
            sinks.append(DisplaySink())
        if options.record:
            sinks.append(RecordSink(options.record, options.record_fps))
        if options.serve:
            sink = ServeSink(options.serve, options.stream_fps)
            sinks.append(sink)
            if announce:
                announce(sink.where())
        if options.mqtt:
            sinks.append(MqttSink(options.mqtt, options.hold, options.mqtt_discovery))
        if options.webhook:
            sinks.append(WebhookSink(options.webhook, options.hold))
        if options.on_change:
            sinks.append(CommandSink(options.on_change, options.hold))
    except BaseException:
        close_sinks(sinks)
        raise
    return sinks


def close_sinks(sinks) -> None:
    """Close every sink; a failing one is reported and does not stop the others (nor hide the summary)."""
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:
            print(f"warning: closing {type(sink).__name__} failed: {exc}", file=sys.stderr)


class JsonLinesSink:
    """--headless: one JSON object per frame on stdout, flushed so a pipe sees it at once."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def on_frame(self, frame, result):
        import json

        self.stream.write(json.dumps(result, separators=(",", ":")) + "\n")
        self.stream.flush()

    def close(self):
        pass


class StatusSink:
    """Default output on a terminal: one status line on stderr, rewritten in place."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()

    def on_frame(self, frame, result):
        if self.enabled:
            lat = result["latency_ms"]
            self.stream.write(f"\r{caption(result['label'], result['score']):<24} {result['fps']:5.1f} fps  "
                              f"capture {lat['capture']:5.1f}  pre {lat['preprocess']:5.1f}  "
                              f"inference {lat['inference']:6.1f} ms ")
            self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")


class DisplaySink:
    """--display: an OpenCV window; q or Esc (or closing the window) stops."""

    WINDOW = "edgeclf"

    def __init__(self):
        try:
            import cv2
        except ImportError:
            raise MissingDependencyError("--display (OpenCV)", OPENCV_INSTALL.replace("-headless", "")) from None
        self.cv2 = cv2
        try:  # fail before the loop starts: headless OpenCV builds and machines without a display cannot do this
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_AUTOSIZE)
        except cv2.error:
            raise MissingDependencyError(
                "--display (a window: OpenCV with GUI support and a display)",
                "pip uninstall opencv-python-headless && pip install opencv-python, or use --serve") from None
        self._shown = False

    def on_frame(self, frame, result):
        import numpy as np

        cv2 = self.cv2
        if self._shown and cv2.getWindowProperty(self.WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            raise StopLoop  # the user closed the window
        cv2.imshow(self.WINDOW, cv2.cvtColor(np.asarray(render(frame, result)), cv2.COLOR_RGB2BGR))
        self._shown = True
        if (cv2.waitKey(1) & 0xFF) in (ord("q"), 27):
            raise StopLoop

    def close(self):
        self.cv2.destroyWindow(self.WINDOW)
        self.cv2.waitKey(1)


class ServeSink:
    """--serve: hand each frame to the web feed. Publishing only stores a reference; the JPEG is encoded by the
    feed's own thread, at most ``stream_fps`` times a second and only while someone watches."""

    def __init__(self, bind: str, stream_fps: float | None = None):
        from .serve import FeedServer, LiveFeed

        feed = LiveFeed(max_fps=stream_fps) if stream_fps else LiveFeed()
        self.server = FeedServer(bind, feed).start()

    def where(self) -> str:
        where = f"serving the live feed at {self.server.url}"
        if self.server.all_interfaces:
            where += f"  (all interfaces: use this machine's address, port {self.server.port})"
        return where

    def on_frame(self, frame, result):
        self.server.feed.publish(frame, result)

    def close(self):
        self.server.stop()


class RecordSink:
    """--record FILE: the annotated stream as a video (MJPG in .avi, mp4v in .mp4), written to a temporary name and
    renamed into place when the run ends, however it ends."""

    CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mkv": "MJPG"}

    def __init__(self, path, fps: float):
        try:
            import cv2
        except ImportError:
            raise MissingDependencyError("--record (OpenCV)", OPENCV_INSTALL) from None
        self.cv2 = cv2
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in self.CODECS:
            raise UsageError(f"--record {path}: unsupported extension", f"use one of {', '.join(self.CODECS)}")
        check_writable_dir(self.path.parent, "--record")  # before frames flow, not after "recorded ..."
        self.fourcc = cv2.VideoWriter_fourcc(*self.CODECS[suffix])
        self.fps = fps
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.writer = None
        self.frames = 0

    def on_frame(self, frame, result):
        import numpy as np

        img = np.asarray(render(frame, result))
        h, w = img.shape[:2]
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (w - w % 2, h - h % 2)  # most codecs want even dimensions
            self.writer = self.cv2.VideoWriter(str(self.tmp), self.fourcc, self.fps, self.size)
            if not self.writer.isOpened():
                raise UsageError(f"--record {self.path}: OpenCV cannot write this file", "try a .avi file name")
        bgr = self.cv2.cvtColor(img[: self.size[1], : self.size[0]], self.cv2.COLOR_RGB2BGR)
        self.writer.write(bgr)
        self.frames += 1

    def close(self):
        if self.writer is not None:
            self.writer.release()
            if self.frames:
                os.replace(self.tmp, self.path)
            elif self.tmp.exists():
                self.tmp.unlink()

