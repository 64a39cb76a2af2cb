"""Scoring a model on a split: accuracy, per-class accuracy and the confusion matrix, as plain JSON-able numbers."""

from __future__ import annotations

import numpy as np


def score(probabilities: np.ndarray, truth, labels: list[str]) -> dict:
    """``probabilities``: (N, classes); ``truth``: N class indices. Confusion rows are true classes, columns
    predictions. The accuracy comes with a 95 % Wilson interval, so a reader can tell whether two runs differ."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.argmax(probabilities, axis=1) if len(truth) else np.zeros(0, np.int64)
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    n, correct = int(len(truth)), int(np.trace(confusion))
    per_class = {label: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
                 for i, label in enumerate(labels)}
    return {"accuracy": correct / n if n else None, "correct": correct, "n": n,
            "accuracy_ci95": list(wilson_interval(correct, n)), "per_class": per_class,
            "confusion": confusion.tolist()}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (round(float(max(0.0, centre - half)), 6), round(float(min(1.0, centre + half)), 6))
