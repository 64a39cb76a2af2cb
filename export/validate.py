"""The validation gate's measurements: the held-out test split, the float reference, each exported model.

Every exported model is run with :class:`edgeclf.runtime.classifier.Classifier` (the code users run on the Pi), the
Keras reference with Keras, both on the same uint8 tensors from :func:`edgeclf.runtime.preprocess.load_image`.
The test split is exactly the one splits.json recorded; files that vanished or changed since training are counted
and refused unless the caller allows them (ARCHITECTURE.md, "The test split is decided once").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeclf.console import progress
from edgeclf.errors import ImageError, UsageError
from edgeclf.fsutil import sha256_file
from edgeclf.manifest import Splits
from edgeclf.runtime import metrics, preprocess
from edgeclf.runtime.stats import LatencyStats

TEST_SPLIT = "test"


@dataclass
class TestSet:
    images: np.ndarray  # (N, H, W, 3) uint8 at the model's input size
    targets: np.ndarray  # (N,) class indices
    paths: list[str]
    total: int  # entries in splits.json's test split
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # "path: reason"


def check_test_files(splits: Splits, *, allow_changed: bool = False, quiet: bool = False) -> tuple[list, list, list]:
    """(present entries, missing paths, changed paths) of the test split; refuses on any difference unless
    ``allow_changed`` (then missing files are left out and changed ones evaluated as they are now)."""
    entries = splits.require(TEST_SPLIT, "test", "there is nothing held out to validate on",
                             "re-run edgeclf train with a test split (it carves one when the dataset has none)")
    root = Path(splits.root)
    present, missing, changed = [], [], []
    for entry in progress(entries, desc="checking test files (sha256)", quiet=quiet, unit="file"):
        path = root / entry.path
        if not path.is_file():
            missing.append(entry.path)
            continue
        if sha256_file(path) != entry.sha256:
            changed.append(entry.path)
        present.append(entry)
    if (missing or changed) and not allow_changed:
        example = (missing + changed)[0]
        raise UsageError(f"{len(missing)} of {len(entries)} test files are missing and {len(changed)} changed since "
                         f"training (e.g. {root / example})",
                         "restore the dataset, or pass --allow-changed to validate on what is there now")
    if not present:
        raise UsageError(f"none of the {len(entries)} test files exist under {root}",
                         "is the dataset still where edgeclf train found it? (splits.json 'root')")
    return present, missing, changed


def load_test_set(splits: Splits, labels: list[str], size: tuple[int, int], *, allow_changed: bool = False,
                  quiet: bool = False) -> TestSet:
    """Check and decode the test split at ``size`` = (width, height); unreadable images are skipped and listed."""
    present, missing, changed = check_test_files(splits, allow_changed=allow_changed, quiet=quiet)
    index = {label: i for i, label in enumerate(labels)}
    root = Path(splits.root)
    images, targets, paths, unreadable = [], [], [], []
    for entry in progress(present, desc="loading test split", quiet=quiet, unit="img"):
        if entry.label not in index:
            raise UsageError(f"splits.json: test file {entry.path} has label {entry.label!r}, which the model does "
                             "not know", "splits.json and edgeclf.json come from different runs; re-run edgeclf train")
        try:
            images.append(preprocess.load_image(root / entry.path, size))
        except ImageError as exc:
            unreadable.append(f"{entry.path}: {exc.reason}")
            continue
        targets.append(index[entry.label])
        paths.append(entry.path)
    if not images:
        raise UsageError(f"none of the {len(present)} test images could be decoded", "check the dataset")
    return TestSet(np.stack(images), np.asarray(targets), paths, len(splits.files(TEST_SPLIT)), missing, changed,
                   unreadable)


def keras_probabilities(model, images: np.ndarray, *, batch_size: int = 32, quiet: bool = False) -> np.ndarray:
    """The float reference: Keras on the uint8 tensors, batched."""
    out = []
    for start in progress(range(0, len(images), batch_size), desc="evaluating keras (float reference)",
                          quiet=quiet, unit="batch"):
        out.append(np.asarray(model(images[start:start + batch_size], training=False)))
    return np.concatenate(out).astype(np.float32)


def tflite_probabilities(path: str | Path, images: np.ndarray, labels: list[str], *, quiet: bool = False
                         ) -> tuple[np.ndarray, list[float], "object"]:
    """Run one exported model through the runtime Classifier, one image at a time (as on a device): probabilities,
    per-image seconds, and the Classifier (its embedded labels must be the run's labels)."""
    from edgeclf.runtime.classifier import Classifier

    clf = Classifier(path)
    if list(clf.labels) != list(labels):
        raise UsageError(f"{path}: embedded labels {clf.labels} differ from the run's {labels}",
                         "this is a bug in edgeclf export; please report it")
    clf.probabilities_from_input(images[0])  # warm-up: first invoke allocates and packs weights
    probs, seconds = [], []
    for image in progress(images, desc=f"evaluating {Path(path).name}", quiet=quiet, unit="img"):
        start = time.perf_counter()
        probs.append(clf.probabilities_from_input(image))
        seconds.append(time.perf_counter() - start)
    return np.stack(probs).astype(np.float32), seconds, clf


def score(probs: np.ndarray, targets: np.ndarray, labels: list[str], reference: np.ndarray | None = None) -> dict:
    """:func:`edgeclf.runtime.metrics.score`, plus top-1 agreement with ``reference`` probabilities."""
    result = metrics.score(targets, probs, labels)
    if reference is not None:
        result["agreement"] = round(metrics.agreement(probs.argmax(axis=1), reference.argmax(axis=1)), metrics.DIGITS)
    return result


def top1_changes(probs: np.ndarray, reference: np.ndarray, paths: list[str], labels: list[str]) -> list[dict]:
    """The test images whose top-1 differs from the float reference: what a user would see the device change."""
    predicted, expected = probs.argmax(axis=1), reference.argmax(axis=1)
    return [{"path": paths[i], "reference": labels[expected[i]], "predicted": labels[predicted[i]],
             "reference_score": round(float(reference[i, expected[i]]), 4),
             "score": round(float(probs[i, predicted[i]]), 4)}
            for i in np.flatnonzero(predicted != expected)]


def latency_p50_ms(seconds: list[float]) -> float:
    return round(LatencyStats.from_seconds(seconds).p50, 4)
