"""The live classification loop behind `edgeclf camera`: capture → preprocess → inference → outputs, timed per stage.

Outputs ("sinks") are small objects with ``on_frame(frame, result)`` and ``close()``: JSON lines, a status line, an
OpenCV window, the web feed, a recording. The loop stops at --max-frames, at the end of a finite source, on Ctrl-C,
when a sink asks (window closed), or when the source fails; in every case sinks and source are closed and the
statistics so far are returned, so the caller can always print a summary.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from edgeclf.errors import EdgeclfError, MissingDependencyError, UsageError

from .annotate import annotate, caption
from .latency import LatencyStats, Timer
from .preprocess import prepare_frame
from .sources import OPENCV_INSTALL, FrameSource, SourceError, pace


class StopLoop(Exception):
    """Raised by a sink to end the loop normally (e.g. the display window was closed)."""


@dataclass
class LoopResult:
    stats: LatencyStats
    reason: str  # "max-frames" | "end-of-source" | "interrupted" | "stopped" | "source-error" | "error"
    error: EdgeclfError | None = None


def run_live(clf, source: FrameSource, sinks=(), *, top_k: int = 1, threshold: float | None = None,
             max_frames: int | None = None, fps_limit: float | None = None, loop: bool = False) -> LoopResult:
    stats = LatencyStats()
    reason, error = "end-of-source", None
    start = 0.0
    model_name = clf.model_path.name
    try:
        while max_frames is None or stats.frames < max_frames:
            start = pace(start, fps_limit)
            with Timer() as t_capture:
                frame = source.read()
            if frame is None:
                if loop and stats.frames and source.rewind():
                    continue
                break
            with Timer() as t_pre:
                x = prepare_frame(frame, clf.input_size)
            with Timer() as t_inf:
                probs = clf.probabilities_from_input(x)
            preds = clf.top(probs, top_k)
            stats.add(capture=t_capture.ms, preprocess=t_pre.ms, inference=t_inf.ms)
            best = preds[0]
            label = best.label if threshold is None or best.score >= threshold else "unknown"
            result = {
                "frame": stats.frames, "label": label, "score": round(best.score, 6),
                "top_k": [{"label": p.label, "score": round(p.score, 6)} for p in preds],
                "latency_ms": {"capture": round(t_capture.ms, 3), "preprocess": round(t_pre.ms, 3),
                               "inference": round(t_inf.ms, 3)},
                "fps": round(stats.fps, 2), "model": model_name,
            }
            for sink in sinks:
                sink.on_frame(frame, result)
        else:
            reason = "max-frames"
    except KeyboardInterrupt:
        reason = "interrupted"
    except StopLoop:
        reason = "stopped"
    except EdgeclfError as exc:
        reason, error = ("source-error" if isinstance(exc, SourceError) else "error"), exc
    finally:
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # a failing output must not hide the summary
                print(f"warning: closing {type(sink).__name__} failed: {exc}", file=sys.stderr)
        source.close()
    return LoopResult(stats, reason, error)


def render(frame, result: dict):
    """The annotated frame every visual output shows."""
    detail = (f"{result['fps']:.1f} fps  inference {result['latency_ms']['inference']:.1f} ms  "
              f"frame {result['frame']}")
    return annotate(frame, caption(result["label"], result["score"]), detail)


# --- sinks -----------------------------------------------------------------------------------------------------

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
    """--serve: publish each frame to the web feed (annotated and encoded only when someone watches)."""

    def __init__(self, bind: str):
        from .serve import FeedServer, LiveFeed

        self.server = FeedServer(bind, LiveFeed(render)).start()

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

