"""Latency statistics for ``edgeclf bench`` (numpy only, so they run on a Pi); accuracy lives in :mod:`.metrics`.

Percentiles follow ``numpy.percentile``'s default ``method="linear"`` (Hyndman & Fan type 7, the same as R's default
and pandas' ``quantile``): for sorted samples x[0..n-1], the q-th percentile is read at fractional rank
``(n - 1) * q / 100`` and interpolated linearly between its two neighbours. So p50 of [1, 2, 3, 4] is 2.5, and p90 of
1..10 is 9.1. The tests check these by hand-computed values, not by calling numpy again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of repeated timings, in milliseconds."""

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    max: float

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> "LatencyStats":
        """Summarise per-call durations given in seconds (as ``time.perf_counter`` differences)."""
        return cls.from_ms(np.asarray(samples, dtype=np.float64) * 1000.0)

    @classmethod
    def from_ms(cls, samples: Sequence[float]) -> "LatencyStats":
        values = np.asarray(samples, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError("latency statistics need at least one sample")
        if not np.all(np.isfinite(values)) or values.min() < 0:
            raise ValueError("latency samples must be finite and non-negative")
        p50, p90, p99 = np.percentile(values, PERCENTILES, method="linear")
        return cls(n=int(values.size), min=float(values.min()), p50=float(p50), p90=float(p90), p99=float(p99),
                   mean=float(values.mean()), std=float(values.std(ddof=1)) if values.size > 1 else 0.0,
                   max=float(values.max()))

    @property
    def throughput(self) -> float:
        """Images per second for back-to-back sequential calls (1000 / mean ms)."""
        return 1000.0 / self.mean if self.mean > 0 else float("inf")

    def to_dict(self, digits: int = 6) -> dict:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when the denominator is zero (nothing meaningful to report)."""
    return None if not denominator else numerator / denominator


def overhead(measured: float, reference: float) -> float | None:
    """Relative overhead of ``measured`` over ``reference``: 0.03 means 3 % slower, negative means faster."""
    r = ratio(measured, reference)
    return None if r is None else r - 1.0
