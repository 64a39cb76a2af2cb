"""int8 calibration images: a stratified sample of the TRAINING split, decoded by the runtime's one preprocessing path.

Calibration only measures activation ranges, but it must still never see the test split: the gate's numbers would no
longer be held-out numbers. Only ``splits.files("train")`` is ever read here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeclf.console import progress
from edgeclf.contracts import DEFAULT_CALIBRATION_SAMPLES
from edgeclf.errors import ImageError, UsageError
from edgeclf.manifest import SplitEntry, Splits
from edgeclf.runtime import preprocess

CALIBRATION_SPLIT = "train"


@dataclass
class Calibration:
    images: np.ndarray  # (N, H, W, 3) uint8, or (2N, ...) with each image's mirror after the N images
    paths: list[str] = field(default_factory=list)  # split-relative paths actually used
    skipped: list[str] = field(default_factory=list)  # "path: reason" for unreadable files
    mirrored: bool = False


def stratified_sample(entries: list[SplitEntry], count: int, seed: int = 0) -> list[SplitEntry]:
    """``count`` entries with every class represented in proportion to its share (at least one each), chosen
    deterministically by ``seed``; all entries when there are fewer than ``count``."""
    if count >= len(entries):
        return list(entries)
    by_label: dict[str, list[SplitEntry]] = defaultdict(list)
    for entry in entries:
        by_label[entry.label].append(entry)
    rng = random.Random(seed)
    labels = sorted(by_label)
    # Largest-remainder apportionment: floor of each class's share, then the leftover seats to the biggest
    # remainders; every class gets at least one image (a class never seen would get clipped ranges).
    shares = {label: count * len(by_label[label]) / len(entries) for label in labels}
    quota = {label: max(1, int(shares[label])) for label in labels}
    for label in sorted(labels, key=lambda k: shares[k] - int(shares[k]), reverse=True):
        if sum(quota.values()) >= count:
            break
        if quota[label] < len(by_label[label]):
            quota[label] += 1
    while sum(quota.values()) > count and any(q > 1 for q in quota.values()):  # many tiny classes
        quota[max(labels, key=lambda k: quota[k])] -= 1
    chosen: list[SplitEntry] = []
    for label in labels:
        pool = sorted(by_label[label], key=lambda e: e.path)
        chosen += rng.sample(pool, min(quota[label], len(pool)))
    return sorted(chosen, key=lambda e: e.path)


def load_calibration(splits: Splits, size: tuple[int, int], count: int = DEFAULT_CALIBRATION_SAMPLES, *, seed: int = 0,
                     mirror: bool = False, quiet: bool = False) -> Calibration:
    """Decode a stratified sample of the training split at ``size`` = (width, height), plus each image's horizontal
    mirror when ``mirror`` (training augments with flips, so mirrors are in-distribution; in the int8 fidelity study
    they kept the float model's answers on more test images than 256 or 1024 plain images). Unreadable files are
    skipped and listed; a sample with no readable image is an error."""
    if count < 1:
        raise UsageError(f"--calibration-samples must be at least 1, got {count}")
    train = splits.require(CALIBRATION_SPLIT, "training", "nothing to calibrate int8 on",
                           "re-run edgeclf train, or export float formats only (--float32/--float16/--dynamic)")
    root = Path(splits.root)
    images, used, skipped = [], [], []
    for entry in progress(stratified_sample(train, count, seed), desc="calibrating int8 (train split)",
                          quiet=quiet, unit="img"):
        try:
            images.append(preprocess.load_image(root / entry.path, size))
            used.append(entry.path)
        except ImageError as exc:
            skipped.append(f"{entry.path}: {exc.reason}")
    if not images:
        raise UsageError(f"none of the {len(skipped)} calibration images under {root} could be read",
                         "is the dataset still where edgeclf train found it? (splits.json 'root')")
    stack = np.stack(images)
    if mirror:
        stack = np.concatenate([stack, stack[:, :, ::-1]])
    return Calibration(stack, used, skipped, mirrored=mirror)
