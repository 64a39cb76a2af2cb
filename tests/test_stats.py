"""Latency statistics against values computed by hand (not by calling numpy again)."""

import math

import pytest

from edgeclf.runtime.stats import LatencyStats, overhead, ratio


def test_percentiles_follow_linear_interpolation_between_closest_ranks():
    # numpy.percentile's default ("linear", type 7): rank (n - 1) * q / 100, interpolated.
    s = LatencyStats.from_ms([4, 1, 3, 2])  # order must not matter
    assert s.p50 == pytest.approx(2.5)  # rank 1.5 -> halfway between 2 and 3
    assert s.p90 == pytest.approx(3.7)  # rank 2.7 -> 3 + 0.7 * (4 - 3)
    assert s.p99 == pytest.approx(3.97)  # rank 2.97
    assert (s.min, s.max, s.mean, s.n) == (1, 4, 2.5, 4)


def test_percentiles_of_one_to_ten_and_one_to_hundred():
    s = LatencyStats.from_ms(range(1, 11))
    assert s.p50 == pytest.approx(5.5)
    assert s.p90 == pytest.approx(9.1)  # rank 8.1
    assert s.p99 == pytest.approx(9.91)  # rank 8.91
    t = LatencyStats.from_ms(range(1, 101))
    assert t.p99 == pytest.approx(99.01)  # rank 98.01
    assert t.p50 == pytest.approx(50.5)


def test_sample_standard_deviation_and_mean():
    s = LatencyStats.from_ms([2, 4, 4, 4, 5, 5, 7, 9])
    assert s.mean == pytest.approx(5.0)
    assert s.std == pytest.approx(math.sqrt(32 / 7))  # ddof=1: sum of squares 32 over n - 1 = 7


def test_single_sample_has_every_statistic_equal_and_zero_spread():
    s = LatencyStats.from_ms([7.5])
    assert s.min == s.p50 == s.p90 == s.p99 == s.mean == s.max == 7.5
    assert s.std == 0.0


def test_seconds_are_converted_to_milliseconds_and_throughput_is_per_second():
    s = LatencyStats.from_seconds([0.010, 0.020, 0.030])
    assert s.p50 == pytest.approx(20.0)
    assert s.mean == pytest.approx(20.0)
    assert s.throughput == pytest.approx(50.0)  # 1000 ms / 20 ms


def test_to_dict_rounds_and_keeps_every_field():
    d = LatencyStats.from_ms([1.234567, 2.345678]).to_dict(digits=2)
    assert set(d) == {"n", "min", "p50", "p90", "p99", "mean", "std", "max"}
    assert d["min"] == 1.23 and d["n"] == 2


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -0.5], [[1.0, 2.0]]])
def test_bad_samples_are_refused(bad):
    with pytest.raises(ValueError):
        LatencyStats.from_ms(bad)


def test_ratio_and_overhead():
    assert overhead(105.0, 100.0) == pytest.approx(0.05)
    assert overhead(95.0, 100.0) == pytest.approx(-0.05)
    assert ratio(30.0, 10.0) == pytest.approx(3.0)
    assert ratio(1.0, 0.0) is None and overhead(1.0, 0.0) is None
