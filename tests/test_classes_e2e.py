"""Many classes, real photos, end to end: the real 10-class clothing-dataset-small (imbalanced, own splits) trained
on the real ImageNet weights (``clothing_run``) and exported to float32 + int8 (``clothing_export``).

Every metric beyond accuracy is in edgeclf.json and report.json under the same keys; temperature scaling fitted on
validation makes the test scores calibrated (ECE measured on the exported models themselves, not just computed);
the pictures exist and are real PNGs; MediaPipe Tasks, reading the calibrated file, agrees with edgeclf's runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.manifest import load_manifest, load_splits

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLASSES = ["dress", "hat", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts", "skirt", "t-shirt"]
METRIC_KEYS = {"count", "correct", "accuracy", "ci95", "per_class", "macro_f1", "weighted_f1", "confusion", "top_k",
               "ece", "thresholds"}


def assert_every_metric(scored: dict, n: int) -> None:
    assert METRIC_KEYS <= set(scored)
    assert scored["count"] == n and set(scored["top_k"]) == {"3", "5"}
    assert scored["accuracy"] <= scored["top_k"]["3"] <= scored["top_k"]["5"] <= 1.0
    assert list(scored["per_class"]) == CLASSES
    for c in scored["per_class"].values():
        assert {"count", "accuracy", "precision", "recall", "f1"} <= set(c) and c["recall"] == c["accuracy"]
    assert sum(c["count"] for c in scored["per_class"].values()) == n
    confusion = np.array(scored["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == n and np.trace(confusion) == scored["correct"]
    assert 0 < scored["macro_f1"] <= 1 and 0 < scored["weighted_f1"] <= 1 and 0 <= scored["ece"] <= 1
    assert set(scored["thresholds"]) == {"0.5", "0.7", "0.9"}
    coverage = [scored["thresholds"][t]["coverage"] for t in ("0.5", "0.7", "0.9")]
    assert coverage == sorted(coverage, reverse=True)  # a higher threshold never keeps more images


def test_train_records_every_metric_calibration_and_data_check(clothing_run):
    m = load_manifest(clothing_run)
    n = len(load_splits(clothing_run).files("test"))
    assert m.labels == CLASSES and n == 372
    assert_every_metric(m.metrics["test"], n)
    assert m.metrics["test"]["accuracy"] >= 0.75  # a frozen-base probe on these weights; far above 10 % chance
    cal = m.metrics["temperature_scaling"]
    assert cal["fitted_on"] == "validation" and cal["bins"] == 15 and cal["temperature"] > 0
    assert cal["test_ece_after"] < cal["test_ece_before"] and cal["test_ece_after"] <= 0.05
    assert m.metrics["test"]["ece"] == pytest.approx(cal["test_ece_after"], abs=1e-6)
    check = m.dataset["data_check"]
    assert check["label_conflicts"]["groups"] >= 1  # train/shorts and train/skirt hold the same photo
    assert check["balance"]["ratio"] > 7 and check["balance"]["class_weight"]["skirt"] > 2
    assert m.hyperparameters["class_weight"] == check["balance"]["class_weight"]  # the weights it trained with
    report = json.loads((clothing_run / "data_check.json").read_text())
    conflict = next(g for g in report["groups"] if g["conflict"])
    assert {f["label"] for f in conflict["files"]} == {"shorts", "skirt"}


def test_export_reports_every_metric_per_format_and_the_measured_calibration(clothing_export, clothing_run):
    report = json.loads((clothing_export / "report.json").read_text())
    n = report["test_split"]["evaluated"]
    assert_every_metric(report["reference"], n)
    assert [r["format"] for r in report["models"]] == ["float32", "int8"]
    cal = report["temperature_scaling"]
    for row in report["models"]:
        assert_every_metric(row, n)
        assert row["ece"] < cal["test_ece_before"]  # the calibration survives conversion and int8 quantization
    trained = load_manifest(clothing_run).metrics["temperature_scaling"]
    assert cal["temperature"] == trained["temperature"]
    # measured on the folded Keras model here, computed from the unfolded one: the same numbers as train's
    assert cal["test_ece_after"] == pytest.approx(trained["test_ece_after"], abs=0.003)
    assert cal["test_ece_before"] == pytest.approx(trained["test_ece_before"], abs=0.003)
    assert cal["test_ece_after"] < cal["test_ece_before"] and cal["test_ece_after"] <= 0.05
    md = (clothing_export / "report.md").read_text()
    for needle in ("## Beyond accuracy", "## What --threshold buys", "coverage @ 0.9", "(worst F1 first)",
                   "[mistakes](model_int8-mistakes.png)", "reliability.png", "T = "):
        assert needle in md, needle


def _assert_png(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) >= 300, path
        pixels = np.asarray(img.convert("L"), dtype=np.float32)
    assert pixels.std() > 10, f"{path} looks blank"


def test_pictures_exist_and_are_real_pngs(clothing_run, clothing_export):
    for name in ("confusion_matrix.png", "reliability.png", "mistakes.png", "learning_curves.png"):
        _assert_png(clothing_run / name)
    report = json.loads((clothing_export / "report.json").read_text())
    _assert_png(clothing_export / report["pictures"]["reliability"])
    for row in report["models"]:
        assert {"confusion", "mistakes"} <= set(row["pictures"])
        for name in row["pictures"].values():
            _assert_png(clothing_export / name)
    int8 = report["models"][1]
    if int8["agreement"] < 1.0:  # top-1 changed somewhere: the flips gallery shows where
        _assert_png(clothing_export / int8["pictures"]["flips"])


@pytest.mark.parametrize("name", ["model_int8.tflite", "model_float32.tflite"])
def test_mediapipe_agrees_with_the_runtime_on_ten_classes(mediapipe_python, clothing_export, clothing_run, tmp_path,
                                                          name):
    from tests.test_mediapipe_export import compare_on_test_split

    agreement, theirs, labels, n = compare_on_test_split(mediapipe_python, clothing_export / name, clothing_run,
                                                         tmp_path)
    assert n == 372 and theirs["labels_txt"] == labels == CLASSES
    assert agreement >= 0.99, f"MediaPipe {theirs['version']} agrees on only {agreement:.2%} of {n}"
