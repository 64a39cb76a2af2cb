"""Deciding train / validation / test once: deterministic, stratified, seeded, recorded with content hashes.

Rules (ARCHITECTURE.md, "The test split is decided once"), per class so every split keeps the class balance of
its source:

* ``train/ validation/ test/`` folders: used as they are.
* ``train/ validation/`` (as cats_and_dogs_filtered): train is ``train/``; ``validation/`` is split
  ``VALIDATION_TEST_FRACTION`` (half) into test and the rest into validation, so the test split is large
  (500 images for cats_and_dogs_filtered) and never overlaps what early stopping looks at.
* ``train/ test/``: validation is carved from ``train/`` (``val_fraction``).
* ``train/`` alone, or a flat class-per-folder dataset: ``val_fraction`` and ``test_fraction`` (15 % each) are carved
  out, leaving 70 % for training.

The shuffle for each class is seeded by ``(seed, class name)`` over the sorted relative paths, so the same files and
seed always give the same splits on any machine. Only readable images take part (unreadable ones are listed apart).

Duplicates (``keep_together``: groups found by :mod:`edgeclf.train.datacheck`) that a carve put in different splits
are moved into the least held-out split among them (train, then validation), so a copy of a training image never
sits in test. Only across boundaries edgeclf drew itself: a dataset's own folders are never re-filed.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgeclf.contracts import SPLIT_NAMES
from edgeclf.errors import UsageError
from edgeclf.manifest import SplitEntry, Splits

from .dataset import ReadImage
from .options import TEST_FRACTION, VAL_FRACTION

VALIDATION_TEST_FRACTION = 0.5


def make_splits(root: Path, labels: list[str], items, *, seed: int = 42, val_fraction: float = VAL_FRACTION,
                test_fraction: float = TEST_FRACTION, keep_together=()) -> tuple[Splits, dict[str, list[int]]]:
    """``items``: a :class:`~edgeclf.train.dataset.ReadImage` (or the same 4-tuple) per readable image;
    ``keep_together``: groups of indices into ``items`` that must end up in one split where edgeclf decides it.

    Returns the Splits (for splits.json) and, per split, the indices into ``items`` in the recorded order.
    """
    root = Path(root)
    items = [ReadImage(*item) for item in items]
    for name, frac in (("val", val_fraction), ("test", test_fraction)):
        if not 0 < frac < 1:
            raise UsageError(f"--{name}-fraction {frac} must be between 0 and 1")
    if val_fraction + test_fraction >= 0.9:
        raise UsageError("--val-fraction plus --test-fraction leaves under 10 % for training", "use smaller fractions")
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[(item.folder, item.label)].append(i)
    folders = {item.folder for item in items}
    chosen: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    if folders == {""} or folders == {"train"}:
        source = "" if "" in folders else "train"
        strategy = (f"{'flat' if not source else 'folders:train'}; stratified {1 - val_fraction - test_fraction:.0%} "
                    f"train / {val_fraction:.0%} validation / {test_fraction:.0%} test, seed {seed}")
        for label in labels:
            parts = _carve(items, groups[(source, label)], label, seed, [test_fraction, val_fraction])
            chosen["test"] += parts[0]
            chosen["validation"] += parts[1]
            chosen["train"] += parts[2]
    else:
        strategy = _split_folders(items, labels, groups, folders, chosen, seed=seed, val_fraction=val_fraction)
    moved = _keep_together(root, chosen, items, keep_together)
    if moved:
        strategy += f"; {len(moved)} duplicate(s) moved so each duplicate group sits in one split"
    for name in SPLIT_NAMES:
        present = {items[i].label for i in chosen[name]}
        if present != set(labels):
            missing = ", ".join(sorted(set(labels) - present))
            raise UsageError(f"the {name} split has no images of class {missing}",
                             "add more readable images to that class (at least 3 per class for a flat folder)")
    splits = Splits(root=str(root), seed=seed, labels=list(labels), strategy=strategy, splits={
        name: [SplitEntry(path=_rel(root, items[i].path), label=items[i].label, sha256=items[i].sha256)
               for i in chosen[name]]
        for name in SPLIT_NAMES}, moved=moved)
    splits.fingerprint = splits.compute_fingerprint()
    return splits, chosen


def _keep_together(root: Path, chosen: dict[str, list[int]], items, groups) -> list[dict]:
    """Move group members to the group's least held-out split, where their source folder feeds that split too."""
    where = {i: name for name, indices in chosen.items() for i in indices}
    feeds = defaultdict(set)  # source folder -> the splits edgeclf filled from it
    for i, name in where.items():
        feeds[items[i].folder].add(name)
    moved = []
    for group in groups:
        target = min((where[i] for i in group if i in where), key=SPLIT_NAMES.index, default=None)
        for i in group:
            if i in where and where[i] != target and target in feeds[items[i].folder]:
                moved.append({"path": _rel(root, items[i].path), "from": where[i], "to": target})
                chosen[where[i]].remove(i)
                chosen[target].append(i)
                where[i] = target
    for name in {m["from"] for m in moved} | {m["to"] for m in moved}:
        chosen[name] = _sorted(items, chosen[name])
    return moved


def _split_folders(items, labels, groups, folders: set[str], chosen: dict[str, list[int]], *, seed: int,
                   val_fraction: float) -> str:
    """Fill ``chosen`` from a dataset's own split folders, carving the missing one; returns the strategy text."""
    strategy = "folders:" + ",".join(sorted(folders, key=SPLIT_NAMES.index))
    for label in labels:
        train = groups[("train", label)]
        if "validation" in folders and "test" in folders:
            chosen["train"] += _sorted(items, train)
            chosen["validation"] += _sorted(items, groups[("validation", label)])
            chosen["test"] += _sorted(items, groups[("test", label)])
        elif "validation" in folders:
            test, val = _carve(items, groups[("validation", label)], label, seed, [VALIDATION_TEST_FRACTION])
            chosen["train"] += _sorted(items, train)
            chosen["validation"] += val
            chosen["test"] += test
        else:  # train + test
            val, rest = _carve(items, train, label, seed, [val_fraction])
            chosen["train"] += rest
            chosen["validation"] += val
            chosen["test"] += _sorted(items, groups[("test", label)])
    if "validation" in folders and "test" not in folders:
        strategy += f"; test = {VALIDATION_TEST_FRACTION:.0%} of validation/ per class, seed {seed}"
    elif "test" in folders and "validation" not in folders:
        strategy += f"; validation = {val_fraction:.0%} of train/ per class, seed {seed}"
    return strategy


def _carve(items, indices: list[int], label: str, seed: int, fractions: list[float]) -> list[list[int]]:
    """Shuffle one class deterministically and cut ``len(fractions)`` slices off the front, plus the rest.
    Every slice gets at least one image when the class has enough for all of them."""
    ordered = _sorted(items, indices)
    key = int.from_bytes(hashlib.sha256(label.encode("utf-8", "surrogateescape")).digest()[:8], "little")
    perm = np.random.default_rng([seed, key]).permutation(len(ordered))
    shuffled = [ordered[j] for j in perm]
    n = len(shuffled)
    counts = [max(1, round(n * f)) if n > len(fractions) else 0 for f in fractions]
    parts, start = [], 0
    for c in counts:
        parts.append(sorted(shuffled[start:start + c], key=lambda i: _rel_key(items, i)))
        start += c
    parts.append(sorted(shuffled[start:], key=lambda i: _rel_key(items, i)))
    return parts


def _sorted(items, indices):
    return sorted(indices, key=lambda i: _rel_key(items, i))


def _rel_key(items, i):
    return str(items[i].path)


def _rel(root: Path, path) -> str:
    return Path(path).resolve().relative_to(root).as_posix()
