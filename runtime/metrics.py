"""Classification metrics, defined once (numpy only, so ``edgeclf bench`` scores on a Pi the way export does).

:func:`score` is the one scoring function behind ``edgeclf.json`` (train), ``report.json`` (export) and the bench
JSON, so all three use the same keys::

    {"count": N, "correct": c, "accuracy": c / N, "ci95": [low, high],
     "per_class": {name: {"count": n_i, "accuracy": recall_i,       # count is the support
                          "precision": p_i, "recall": recall_i, "f1": f1_i}, ...},
     "macro_f1": ..., "weighted_f1": ...,
     "confusion": [[...], ...],          # rows: true class, columns: prediction
     # only from (N, classes) scores, not from bare predictions:
     "top_k": {"3": ..., "5": ...},      # k = 3 and 5 when there are at least that many classes
     "ece": ...,                         # expected calibration error, 15 equal-width bins of top-1 confidence
     "thresholds": {"0.5": {"coverage", "accuracy", "count"}, "0.7": ..., "0.9": ...}}

Floats are rounded to ``DIGITS`` places. With no examples, ``accuracy`` is None and ``ci95`` is [None, None].
New metrics add keys to this dict (or to each ``per_class`` entry); they never rename the existing ones.

Precision is None for a class never predicted, recall for a class with no examples; F1 = 2TP / (2TP + FP + FN)
(None only when a class neither occurs nor is predicted); macro F1 averages the classes with an F1, weighted F1
weights them by support. ``thresholds`` says what ``--threshold t`` buys: the share of images whose top score
reaches t (coverage) and the accuracy on those.

Accuracy intervals are Wilson score intervals: unlike the normal approximation they stay inside [0, 1] and behave at
100 % accuracy, which a good model on a small test set often reaches.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054  # standard normal quantile at 0.975: a two-sided 95 % interval
DIGITS = 6
TOP_K = (3, 5)
ECE_BINS = 15
THRESHOLDS = (0.5, 0.7, 0.9)
WORST_FIRST_ABOVE = 6  # classes: above this many, summaries list the worst first


def score(labels: Sequence[int], probs_or_preds, class_names: Sequence[str]) -> dict:
    """Accuracy with its 95 % Wilson interval, per-class accuracy and the confusion matrix.

    ``labels``: N true class indices; ``probs_or_preds``: (N, classes) scores (argmax is the prediction) or N
    predicted indices; ``class_names``: one name per class index."""
    truth = np.asarray(labels, dtype=np.int64).reshape(-1)
    predicted = predictions(probs_or_preds, len(truth))
    confusion = confusion_matrix(truth, predicted, len(class_names))
    count, correct = int(len(truth)), int(np.trace(confusion))
    low, high = wilson_interval(correct, count) if count else (None, None)
    per_class = per_class_scores(confusion, class_names)
    result = {"count": count, "correct": correct, "accuracy": _round(correct / count) if count else None,
              "ci95": [_round(low), _round(high)], "per_class": per_class, **f1_averages(per_class),
              "confusion": confusion.tolist()}
    scores = np.asarray(probs_or_preds)
    if scores.ndim == 2:  # scores, not bare predictions: ranking and confidence too
        result.update(top_k={str(k): top_k_accuracy(scores, truth, k) for k in TOP_K if len(class_names) >= k},
                      ece=expected_calibration_error(scores, truth), thresholds=threshold_coverage(scores, truth))
    return result


def per_class_scores(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """Per class: count (support), accuracy (= recall, the share of its images found), precision, recall, F1."""
    confusion = np.asarray(confusion, dtype=np.int64)
    tp, predicted, support = np.diag(confusion), confusion.sum(axis=0), confusion.sum(axis=1)
    return {name: {"count": int(support[i]), "accuracy": _ratio(tp[i], support[i]),
                   "precision": _ratio(tp[i], predicted[i]), "recall": _ratio(tp[i], support[i]),
                   "f1": _ratio(2 * tp[i], predicted[i] + support[i])}  # 2TP / (2TP + FP + FN)
            for i, name in enumerate(class_names)}


def f1_averages(per_class: dict) -> dict:
    """Macro F1 (each class with an F1 counts the same) and support-weighted F1."""
    scored = [c for c in per_class.values() if c["f1"] is not None]
    support = sum(c["count"] for c in scored)
    return {"macro_f1": _round(np.mean([c["f1"] for c in scored])) if scored else None,
            "weighted_f1": _round(sum(c["f1"] * c["count"] for c in scored) / support) if support else None}


def top_k_accuracy(scores: np.ndarray, truth: np.ndarray, k: int) -> float | None:
    """Share of examples whose true class is among the ``k`` highest scores (ties go to the lower class index)."""
    if len(truth) == 0:
        return None
    top = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]
    return _round(np.mean((top == np.asarray(truth)[:, None]).any(axis=1)))


def reliability_bins(scores: np.ndarray, truth, bins: int = ECE_BINS) -> list[dict]:
    """Top-1 confidence in ``bins`` equal-width bins (lo, hi]: count, mean confidence and accuracy of each."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.int64)
    confidence = scores.max(axis=1) if len(truth) else np.zeros(0)
    correct = scores.argmax(axis=1) == truth if len(truth) else np.zeros(0, bool)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    table = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        table.append({"lo": _round(b / bins), "hi": _round((b + 1) / bins), "count": n,
                      "confidence": _round(confidence[inside].mean()) if n else None,
                      "accuracy": _round(correct[inside].mean()) if n else None})
    return table


def expected_calibration_error(scores: np.ndarray, truth, bins: int = ECE_BINS) -> float | None:
    """ECE: the count-weighted mean of |accuracy - confidence| over the reliability bins (0 = calibrated)."""
    n = len(truth)
    if n == 0:
        return None
    table = reliability_bins(scores, truth, bins)
    return _round(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in table if b["count"]) / n)


def threshold_coverage(scores: np.ndarray, truth, thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """Per threshold t: how many examples have a top score >= t (coverage, count) and the accuracy on those."""
    scores, truth = np.asarray(scores), np.asarray(truth, dtype=np.int64)
    confidence = scores.max(axis=1) if len(truth) else np.zeros(0)
    correct = scores.argmax(axis=1) == truth if len(truth) else np.zeros(0, bool)
    out = {}
    for t in thresholds:
        kept = confidence >= t
        out[f"{t:g}"] = {"coverage": _round(kept.mean()) if len(truth) else None,
                         "accuracy": _round(correct[kept].mean()) if kept.any() else None, "count": int(kept.sum())}
    return out


def with_temperature(scores: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): the probabilities a softmax model gives once its logits are divided by ``temperature``
    (T > 1 softens, T < 1 sharpens; the top-1 never changes)."""
    logits = np.log(np.clip(np.asarray(scores, dtype=np.float64), 1e-30, None)) / temperature
    scaled = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def worst_classes(per_class: dict) -> list[str]:
    """Class names from the lowest F1 up (classes without an F1 last)."""
    return sorted(per_class, key=lambda c: (per_class[c]["f1"] is None, per_class[c]["f1"] or 0.0))


def summary_order(per_class: dict) -> list[str]:
    """The order summaries list classes in: worst F1 first when there are more than WORST_FIRST_ABOVE (the ones to
    act on), else the label order."""
    return worst_classes(per_class) if len(per_class) > WORST_FIRST_ABOVE else list(per_class)


def predictions(probs_or_preds, count: int) -> np.ndarray:
    """Top-1 class indices from (N, classes) scores, or the N indices themselves."""
    values = np.asarray(probs_or_preds)
    if values.ndim == 2:
        return values.argmax(axis=1).astype(np.int64) if len(values) else np.zeros(0, np.int64)
    if values.ndim == 1 and len(values) == count:
        return values.astype(np.int64)
    raise ValueError(f"expected {count} predictions or a ({count}, classes) array, got shape {values.shape}")


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts; rows are true classes, columns predictions."""
    if len(truth) != len(predicted):
        raise ValueError(f"cannot compare {len(truth)} labels with {len(predicted)} predictions")
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    return confusion


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """95 % (by default) Wilson score interval for a proportion ``correct / total``."""
    if total <= 0:
        raise ValueError("an accuracy interval needs at least one example")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be between 0 and {total}, got {correct}")
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def agreement(a: Sequence, b: Sequence) -> float:
    """Fraction of positions where two top-1 prediction lists agree."""
    if len(a) != len(b):
        raise ValueError(f"cannot compare {len(a)} predictions with {len(b)}")
    if not len(a):
        raise ValueError("no predictions to compare")
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def _ratio(num, den) -> float | None:
    return _round(num / den) if den else None


def _round(value) -> float | None:
    return None if value is None else round(float(value), DIGITS)
