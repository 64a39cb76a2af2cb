"""Scoring and intervals (edgeclf.runtime.metrics) against values computed by hand, not by calling numpy again."""

import numpy as np
import pytest

from edgeclf.runtime.metrics import agreement, score, wilson_interval

NAMES = ["cats", "dogs", "birds"]


def test_score_from_probabilities_counts_confusion_and_per_class_accuracy():
    truth = [0, 0, 0, 1, 1, 2]
    probs = np.array([[.9, .1, 0], [.2, .7, .1], [.6, .3, .1], [.1, .8, .1], [.3, .3, .4], [.1, .1, .8]])
    out = score(truth, probs, NAMES)
    assert out["count"] == 6 and out["correct"] == 4 and out["accuracy"] == round(4 / 6, 6)
    assert out["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # rows: truth, columns: prediction
    assert {k: {"count": v["count"], "accuracy": v["accuracy"]} for k, v in out["per_class"].items()} == {
        "cats": {"count": 3, "accuracy": round(2 / 3, 6)}, "dogs": {"count": 2, "accuracy": 0.5},
        "birds": {"count": 1, "accuracy": 1.0}}
    lo, hi = out["ci95"]
    assert (lo, hi) == (round(wilson_interval(4, 6)[0], 6), round(wilson_interval(4, 6)[1], 6))


def test_score_takes_predicted_indices_too_and_names_classes_never_seen():
    out = score([1, 1, 0], [1, 0, 0], NAMES)
    assert out["correct"] == 2 and out["per_class"]["birds"]["count"] == 0
    assert out["per_class"]["birds"]["accuracy"] is None
    from_scores = score([1, 1, 0], np.eye(3)[[1, 0, 0]], NAMES)
    assert {k: from_scores[k] for k in out} == out  # scores add top_k/ece/thresholds, the rest is the same


def test_score_of_nothing_has_no_accuracy_and_refuses_mismatched_lengths():
    out = score([], np.zeros((0, 3)), NAMES)
    assert out["count"] == 0 and out["accuracy"] is None and out["ci95"] == [None, None]
    with pytest.raises(ValueError):
        score([0, 1], [0], NAMES)


def test_wilson_interval_matches_published_values():
    # Wilson (1927) 95 % interval; 8/10 -> [0.490, 0.943] is the textbook example (Newcombe 1998, method 3).
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson_interval(10, 10)  # stays inside [0, 1] at 100 %
    assert hi == pytest.approx(1.0) and hi <= 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)


def test_wilson_interval_narrows_with_more_data_and_refuses_nonsense():
    assert wilson_interval(980, 1000)[1] - wilson_interval(980, 1000)[0] < wilson_interval(98, 100)[1] - \
        wilson_interval(98, 100)[0]
    with pytest.raises(ValueError):
        wilson_interval(0, 0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_agreement():
    assert agreement(["a", "b", "a", "b"], ["a", "b", "b", "b"]) == 0.75
    assert agreement([0, 1], [1, 0]) == 0.0
    with pytest.raises(ValueError):
        agreement([0], [0, 1])
    with pytest.raises(ValueError):
        agreement([], [])
