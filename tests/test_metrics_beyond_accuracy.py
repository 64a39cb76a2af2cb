"""Metrics beyond accuracy (edgeclf.runtime.metrics), each against values worked out by hand in the comments:
precision/recall/F1 from a small confusion matrix, macro and weighted F1, top-k, ECE, threshold coverage."""

import numpy as np
import pytest

from edgeclf.runtime.metrics import (expected_calibration_error, reliability_bins, score, threshold_coverage,
                                     top_k_accuracy, worst_classes)

NAMES = ["a", "b", "c"]
# truth 0 0 0 0 1 1 1 2 2 2 / predicted 0 0 1 2 1 1 0 2 2 1
#   confusion [[2, 1, 1], [1, 2, 0], [0, 1, 2]]: TP 2 2 2, predicted per class 3 4 3, support 4 3 3
TRUTH = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
PREDICTED = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]


def test_precision_recall_f1_and_support_per_class_by_hand():
    out = score(TRUTH, PREDICTED, NAMES)
    assert out["confusion"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    a, b, c = (out["per_class"][n] for n in NAMES)
    assert (a["precision"], a["recall"], a["f1"], a["count"]) == (0.666667, 0.5, 0.571429, 4)  # F1 = 4 / 7
    assert (b["precision"], b["recall"], b["f1"], b["count"]) == (0.5, 0.666667, 0.571429, 3)  # F1 = 4 / 7
    assert (c["precision"], c["recall"], c["f1"], c["count"]) == (0.666667, 0.666667, 0.666667, 3)  # 4 / 6
    assert a["accuracy"] == a["recall"]  # per-class accuracy is recall
    assert out["macro_f1"] == 0.603175  # (4/7 + 4/7 + 2/3) / 3
    assert out["weighted_f1"] == 0.6  # (4/7 * 4 + 4/7 * 3 + 2/3 * 3) / 10 = 6 / 10


def test_undefined_precision_and_recall_are_none_not_zero():
    out = score([0, 0, 1], [0, 0, 0], NAMES)  # b never predicted, c never occurs nor is predicted
    assert out["per_class"]["b"] == {"count": 1, "accuracy": 0.0, "precision": None, "recall": 0.0, "f1": 0.0}
    assert out["per_class"]["c"]["f1"] is None and out["per_class"]["c"]["precision"] is None
    assert out["macro_f1"] == 0.4  # a: 2*2 / (3 + 2) = 0.8, b: 0 -> mean 0.4; c has no F1
    assert worst_classes(out["per_class"]) == ["b", "a", "c"]


def test_top_k_by_hand_with_a_tie():
    probs = np.array([[0.5, 0.3, 0.15, 0.05],   # truth 1: 2nd
                      [0.1, 0.2, 0.3, 0.4],     # truth 0: last
                      [0.25, 0.25, 0.4, 0.1],   # truth 1: 3rd (tie with class 0, which ranks first)
                      [0.7, 0.1, 0.1, 0.1]])    # truth 0: 1st
    truth = np.array([1, 0, 1, 0])
    assert [top_k_accuracy(probs, truth, k) for k in (1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1.0]
    out = score(truth, probs, list("wxyz"))
    assert out["top_k"] == {"3": 0.75}  # k = 5 needs 5 classes
    assert "top_k" not in score(truth, probs.argmax(axis=1), list("wxyz"))  # bare predictions have no ranking


# confidences (top score) and whether top-1 is right, with their 15-bin index ceil(15 * conf) - 1:
#   0.95 right -> 14; 0.92 wrong -> 13; 0.70 right -> 10; 0.62 wrong -> 9; 0.66 right -> 9
CAL_PROBS = np.array([[0.95, 0.05], [0.92, 0.08], [0.3, 0.7], [0.62, 0.38], [0.66, 0.34]])
CAL_TRUTH = np.array([0, 1, 1, 1, 0])


def test_expected_calibration_error_by_hand():
    # bins: 14 |1 - .95| = .05; 13 |0 - .92| = .92; 10 |1 - .7| = .3; 9 (2 images) |.5 - .64| = .14
    # ECE = (.05 + .92 + .3 + 2 * .14) / 5 = 1.55 / 5 = 0.31
    assert expected_calibration_error(CAL_PROBS, CAL_TRUTH) == pytest.approx(0.31, abs=1e-6)
    table = reliability_bins(CAL_PROBS, CAL_TRUTH)
    assert [b["count"] for b in table] == [0] * 9 + [2, 1, 0, 0, 1, 1]
    assert table[9]["confidence"] == 0.64 and table[9]["accuracy"] == 0.5
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 4), [0, 0, 0, 0]) == 0.0


def test_threshold_coverage_by_hand():
    out = threshold_coverage(CAL_PROBS, CAL_TRUTH)
    assert out["0.5"] == {"coverage": 1.0, "accuracy": 0.6, "count": 5}
    assert out["0.7"] == {"coverage": 0.6, "accuracy": 0.666667, "count": 3}  # .95 .92 .70
    assert out["0.9"] == {"coverage": 0.4, "accuracy": 0.5, "count": 2}
    assert score(CAL_TRUTH, CAL_PROBS, ["x", "y"])["thresholds"] == out
