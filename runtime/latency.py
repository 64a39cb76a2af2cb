"""Per-stage frame timing for the live loop: samples in ms per stage, a smoothed FPS, and a summary.

Each stage is summarised by :class:`.stats.LatencyStats`, the type ``edgeclf bench`` reports, so camera and bench
compute the same statistics the same way.
"""

from __future__ import annotations

import time
from array import array

import numpy as np

from .stats import LatencyStats

STAGES = ("capture", "preprocess", "inference")


class FrameTimings:
    """Collects one sample per stage per frame; ``fps`` is an exponential moving average of the frame rate."""

    def __init__(self, stages=STAGES, smoothing: float = 0.1):
        self.stages = tuple(stages)
        self.samples = {stage: array("d") for stage in self.stages}
        self.frames = 0
        self.fps = 0.0
        self._smoothing = smoothing
        self._started = time.perf_counter()
        self._last_frame: float | None = None

    def add(self, **ms: float) -> None:
        """Record one frame: ``add(capture=1.2, preprocess=0.3, inference=8.1)`` (milliseconds)."""
        for stage in self.stages:
            self.samples[stage].append(float(ms.get(stage, 0.0)))
        self.frames += 1
        now = time.perf_counter()
        if self._last_frame is not None:
            interval = now - self._last_frame
            if interval > 0:
                rate = 1.0 / interval
                self.fps = rate if self.fps == 0.0 else self.fps + self._smoothing * (rate - self.fps)
        self._last_frame = now

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def summary(self) -> dict:
        """{"frames", "seconds", "fps", "stages": {stage: {"mean", "p50", "p90", "max"}}} (ms, rounded)."""
        stages = {}
        for stage, values in self.samples.items():
            stats = LatencyStats.from_ms(np.frombuffer(values, dtype=np.float64)).to_dict(3) if len(values) else {}
            stages[stage] = {key: stats.get(key) for key in ("mean", "p50", "p90", "max")}
        seconds = self.elapsed
        return {"frames": self.frames, "seconds": round(seconds, 3),
                "fps": round(self.frames / seconds, 2) if seconds > 0 and self.frames else 0.0, "stages": stages}

    def table(self) -> str:
        """The summary as an aligned text table (stderr at the end of a run)."""
        from edgeclf.console import format_table

        s = self.summary()
        rows = [[stage, v["mean"], v["p50"], v["p90"], v["max"]] for stage, v in s["stages"].items()]
        return (f"{s['frames']} frames in {s['seconds']:.1f} s ({s['fps']} fps)\n"
                + format_table(rows, ["stage (ms)", "mean", "p50", "p90", "max"]))


class Timer:
    """``with Timer() as t: ...`` then ``t.ms``."""

    __slots__ = ("start", "ms")

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.ms = (time.perf_counter() - self.start) * 1000.0
