"""Classification metrics, defined once (numpy only, so ``edgeclf bench`` scores on a Pi the way export does).

:func:`score` is the one scoring function behind ``edgeclf.json`` (train), ``report.json`` (export) and the bench
JSON, so all three use the same keys::

    {"count": N, "correct": c, "accuracy": c / N, "ci95": [low, high],
     "per_class": {name: {"count": n_i, "accuracy": recall_i}, ...},
     "confusion": [[...], ...]}          # rows: true class, columns: prediction

Floats are rounded to ``DIGITS`` places. With no examples, ``accuracy`` is None and ``ci95`` is [None, None].
New metrics add keys to this dict (or to each ``per_class`` entry); they never rename the existing ones.

Accuracy intervals are Wilson score intervals: unlike the normal approximation they stay inside [0, 1] and behave at
100 % accuracy, which a good model on a small test set often reaches.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054  # standard normal quantile at 0.975: a two-sided 95 % interval
DIGITS = 6


def score(labels: Sequence[int], probs_or_preds, class_names: Sequence[str]) -> dict:
    """Accuracy with its 95 % Wilson interval, per-class accuracy and the confusion matrix.

    ``labels``: N true class indices; ``probs_or_preds``: (N, classes) scores (argmax is the prediction) or N
    predicted indices; ``class_names``: one name per class index."""
    truth = np.asarray(labels, dtype=np.int64).reshape(-1)
    predicted = predictions(probs_or_preds, len(truth))
    confusion = confusion_matrix(truth, predicted, len(class_names))
    count, correct = int(len(truth)), int(np.trace(confusion))
    low, high = wilson_interval(correct, count) if count else (None, None)
    per_class = {name: {"count": int(confusion[i].sum()),
                        "accuracy": _round(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None}
                 for i, name in enumerate(class_names)}
    return {"count": count, "correct": correct, "accuracy": _round(correct / count) if count else None,
            "ci95": [_round(low), _round(high)], "per_class": per_class, "confusion": confusion.tolist()}


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


def _round(value) -> float | None:
    return None if value is None else round(float(value), DIGITS)
