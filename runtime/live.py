"""The live classification loop behind `edgeclf camera`: capture → preprocess → inference → outputs, timed per stage.

The loop stops at --max-frames, at the end of a finite source, on Ctrl-C (or SIGTERM), when a sink asks (window
closed), or when the source fails; in every case sinks and source are closed and the statistics so far are returned,
so the caller can always print a summary. Sinks see the display frame (the camera's main stream, the photo as it
is); the model sees its own input (the Pi camera's lores stream, or a resized copy made by the one preprocessing
path). Nothing slow happens on this thread for the web page: the feed encodes JPEGs on its own thread.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

from edgeclf.errors import EdgeclfError

from .classifier import answer
from .latency import FrameTimings, Timer
from .preprocess import prepare_frame
from .signals import stop_requests
from .sinks import SinkOptions, StopLoop, close_sinks, open_sinks
from .sources import FrameSource, SourceError, open_source, pace


@dataclass
class LoopOptions:
    top_k: int = 1
    threshold: float | None = None
    max_frames: int | None = None
    fps_limit: float | None = None
    loop: bool = False


@dataclass
class LoopResult:
    stats: FrameTimings
    reason: str  # "max-frames" | "end-of-source" | "interrupted" | "stopped" | "source-error" | "error"
    error: EdgeclfError | None = None
    summary: dict = field(default_factory=dict)


def run_live(clf, source: FrameSource, sinks=(), *, top_k: int = 1, threshold: float | None = None,
             max_frames: int | None = None, fps_limit: float | None = None, loop: bool = False,
             stop: threading.Event | None = None) -> LoopResult:
    """Classify frames from ``source`` until a stop condition; always closes sinks and source. ``stop`` (see
    runtime/signals.py) ends the loop between frames as "interrupted"."""
    options = LoopOptions(top_k, threshold, max_frames, fps_limit, loop)
    stats = FrameTimings()
    reason, error = "end-of-source", None
    try:
        reason = _classify_frames(clf, source, sinks, stats, options, stop or threading.Event())
    except KeyboardInterrupt:
        reason = "interrupted"
    except StopLoop:
        reason = "stopped"
    except EdgeclfError as exc:
        reason, error = ("source-error" if isinstance(exc, SourceError) else "error"), exc
    finally:
        close_sinks(sinks)
        source.close()
    return LoopResult(stats, reason, error)


def _classify_frames(clf, source: FrameSource, sinks, stats: FrameTimings, options: LoopOptions,
                     stop: threading.Event) -> str:
    """The loop proper; returns why it ended normally."""
    start = 0.0
    while options.max_frames is None or stats.frames < options.max_frames:
        start = pace(start, options.fps_limit, sleep=stop.wait)
        if stop.is_set():
            return "interrupted"
        with Timer() as t_capture:
            frame = source.read()
        if frame is None:
            if options.loop and stats.frames and source.rewind():
                continue
            return "end-of-source"
        with Timer() as t_pre:
            x = frame.model if frame.model is not None else prepare_frame(frame.display, clf.input_size)
        with Timer() as t_inf:
            probs = clf.probabilities_from_input(x)
        stats.add(capture=t_capture.ms, preprocess=t_pre.ms, inference=t_inf.ms)
        latency = {"capture": t_capture.ms, "preprocess": t_pre.ms, "inference": t_inf.ms}
        result = frame_result(clf, probs, stats, latency, frame.display.shape, options)
        for sink in sinks:
            sink.on_frame(frame.display, result)
    return "max-frames"


def frame_result(clf, probs, stats: FrameTimings, latency: dict, display_shape, options: LoopOptions) -> dict:
    """What every output (JSON line, status line, web page) says about one frame."""
    preds = clf.top(probs, options.top_k)
    best = answer(preds, options.threshold)
    return {
        "frame": stats.frames,
        "label": best.label,
        "score": round(best.score, 6),
        "top_k": [{"label": p.label, "score": round(p.score, 6)} for p in preds],
        "threshold": options.threshold,
        "latency_ms": {stage: round(ms, 3) for stage, ms in latency.items()},
        "fps": round(stats.fps, 2),
        "model": clf.model_path.name,
        "display_size": [int(display_shape[1]), int(display_shape[0])],
        "input_size": list(clf.input_size),
    }


def run_camera(clf, source_spec: str, sink_options: SinkOptions, loop_options: LoopOptions,
               note=lambda text: None) -> LoopResult:
    """Open the source and the outputs, run the loop, and return its result with a JSON-ready ``summary``.
    ``note(text)`` hears where the web feed is and (unless quiet) what runs on what. From the moment the source
    opens, Ctrl-C and SIGTERM stop the loop between frames (runtime/signals.py)."""
    with stop_requests() as stop:
        source = open_source(source_spec, clf.input_size)
        record_fps = loop_options.fps_limit or source.fps or 10.0
        try:
            sinks = open_sinks(dataclasses.replace(sink_options, record_fps=record_fps), note)
        except BaseException:
            source.close()
            raise
        if not sink_options.quiet:
            note(f"{clf.model_path.name} ({clf.backend}, {clf.num_threads} threads, input {clf.input_size[0]}x"
                 f"{clf.input_size[1]} {clf.input_dtype}) on {source.name}; Ctrl-C to stop")
        result = run_live(clf, source, sinks, stop=stop, **dataclasses.asdict(loop_options))
    result.summary = dict(result.stats.summary(), source=source.name, stopped=result.reason, backend=clf.backend,
                          threads=clf.num_threads)
    skipped = getattr(source, "skipped", [])
    if skipped:
        result.summary["skipped"] = [str(e) for e in skipped]
    if result.error is not None:
        result.summary["error"] = str(result.error)
    return result
