"""Train's final assessment of the restored best model: calibrate it, score it, draw what people look at.

Temperature scaling is fitted on the validation split and folded into the model (see
:mod:`edgeclf.train.temperature`) before anything is scored, so edgeclf.json describes the model that is saved and
exported. The test split is scored with :func:`edgeclf.runtime.metrics.score`, the function export and bench use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeclf import figures
from edgeclf.runtime.metrics import reliability_bins, score, with_temperature

from .temperature import calibrate

MISTAKES = "mistakes.png"


def assess(model, probabilities: dict[str, np.ndarray], truth: dict[str, np.ndarray], labels: list[str], *,
           test_images: np.ndarray, test_paths: list[str], out_dir: Path) -> dict:
    """``probabilities``/``truth`` per split ("validation", "test") from the uncalibrated model. Folds T into
    ``model``, returns the metrics per split plus "calibration", and writes confusion_matrix.png,
    reliability.png and mistakes.png into ``out_dir``."""
    calibration = calibrate(model, (probabilities["validation"], truth["validation"]),
                            (probabilities["test"], truth["test"]))
    temperature = calibration["temperature"]
    calibrated = {split: with_temperature(p, temperature) for split, p in probabilities.items()}
    metrics = {split: score(truth[split], calibrated[split], labels) for split in calibrated}
    metrics["temperature_scaling"] = calibration
    draw(calibrated["test"], probabilities["test"], truth["test"], labels, metrics["test"], calibration,
         test_images, test_paths, Path(out_dir))
    return metrics


def draw(calibrated: np.ndarray, uncalibrated: np.ndarray, truth: np.ndarray, labels: list[str], test: dict,
         calibration: dict, images: np.ndarray, paths: list[str], out_dir: Path) -> None:
    """The three test-split pictures of a run directory."""
    figures.plot_confusion(test["confusion"], labels, out_dir / figures.CONFUSION_MATRIX)
    figures.plot_reliability(
        {"before calibration": (reliability_bins(uncalibrated, truth), calibration["test_ece_before"]),
         f"calibrated (T = {calibration['temperature']:.2f})": (reliability_bins(calibrated, truth),
                                                                 calibration["test_ece_after"])},
        out_dir / figures.RELIABILITY)
    tiles = figures.mistake_tiles(calibrated, truth, labels, images, paths)
    figures.plot_gallery(tiles, out_dir / MISTAKES, "test images the model gets wrong, most confident first")
