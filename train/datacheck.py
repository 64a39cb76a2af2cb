"""Data checks before training: duplicates, leakage across splits, label conflicts, class balance.

A dataset scraped from the web or a phone's camera roll holds the same photo more than once: byte-identical copies
and re-encoded or resized ones. A copy in train and another in test inflates the test score (leakage); a copy filed
under two classes means one of the labels is wrong (a label conflict). Both are found here from what training has
anyway: each file's sha256 (exact duplicates) and its decoded pixels, whose perceptual hash (ImageHash's DCT pHash,
256 bits) survives re-encoding and resizing (near-duplicates: Hamming distance <= ``NEAR_DISTANCE``).

No TensorFlow here: ``edgeclf data check`` runs the same checks without training.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.console import note
from edgeclf.contracts import SPLIT_NAMES, check_image_size
from edgeclf.errors import MissingDependencyError, UsageError
from edgeclf.fsutil import atomic_write_json

CHECK_FILE = "data_check.json"
HASH_SIDE = 16  # pHash of the 16x16 lowest DCT frequencies: 256 bits
HASH_BITS = HASH_SIDE * HASH_SIDE
# At most this many of the 256 pHash bits differ between near-duplicates. On clothing-dataset-small, a copy resized
# to 30-80 % and re-encoded at JPEG quality 60-85 moved at most 8 bits (450 copies of 150 photos), while the closest
# distinct photos (same background, same kind of garment) differ by 38 or more. The 64-bit pHash cannot tell those
# apart (distinct photos at 4 bits, copies at 2).
NEAR_DISTANCE = 20
IMBALANCE_RATIO = 1.5  # class weights are used when the largest train class is this many times the smallest
_CHUNK = 256  # rows of the pairwise distance matrix computed at once


@dataclass
class Item:
    """One readable image: the split it is in (or its source folder before splitting), label, path, sha256."""

    split: str
    label: str
    path: str
    sha256: str


@dataclass
class Group:
    """Files that are the same picture: ``kind`` "exact" (same bytes) or "near" (pHash distance <= the limit)."""

    kind: str
    members: list[int]
    distance: int = 0  # the largest pHash distance inside the group

    def splits(self, items: Sequence[Item]) -> list[str]:
        return sorted({items[i].split for i in self.members}, key=_split_order)

    def labels(self, items: Sequence[Item]) -> list[str]:
        return sorted({items[i].label for i in self.members})


@dataclass
class DataCheck:
    """What the checks found; ``to_dict`` is what data_check.json and ``edgeclf data check --json`` hold."""

    items: list[Item]
    groups: list[Group]
    unreadable: list[dict] = field(default_factory=list)
    moved: list[dict] = field(default_factory=list)

    def leaking(self) -> list[Group]:
        return [g for g in self.groups if len(g.splits(self.items)) > 1]

    def conflicting(self) -> list[Group]:
        return [g for g in self.groups if len(g.labels(self.items)) > 1]

    def to_dict(self, labels: Sequence[str]) -> dict:
        leaking, conflicting = self.leaking(), self.conflicting()
        return {"images": len(self.items), "unreadable": self.unreadable,
                "hash": f"pHash {HASH_BITS} bits (ImageHash), near-duplicate at Hamming distance <= {NEAR_DISTANCE}",
                "exact_duplicates": _tally([g for g in self.groups if g.kind == "exact"]),
                "near_duplicates": _tally([g for g in self.groups if g.kind == "near"]),
                "leakage": {**_tally(leaking), "by_splits": dict(Counter(
                    "+".join(g.splits(self.items)) for g in leaking))},
                "label_conflicts": _tally(conflicting),
                "moved": self.moved,
                "balance": balance(self.items, labels),
                "groups": [self._describe(g) for g in self.groups]}

    def _describe(self, group: Group) -> dict:
        return {"kind": group.kind, "distance": group.distance,
                "leak": len(group.splits(self.items)) > 1, "conflict": len(group.labels(self.items)) > 1,
                "files": [{"path": self.items[i].path, "split": self.items[i].split, "label": self.items[i].label}
                          for i in group.members]}


def perceptual_hashes(pixels: np.ndarray) -> np.ndarray:
    """(N, HASH_BITS) bool pHash bits of decoded uint8 RGB images (any size: pHash works on a small greyscale copy)."""
    from PIL import Image

    try:
        import imagehash
    except ImportError:
        raise MissingDependencyError("the near-duplicate check", 'pip install "edgeclf[train]" (it brings ImageHash)'
                                     ) from None
    bits = np.zeros((len(pixels), HASH_BITS), dtype=bool)
    for i, image in enumerate(pixels):
        bits[i] = imagehash.phash(Image.fromarray(np.asarray(image)), hash_size=HASH_SIDE).hash.ravel()
    return bits


def find_groups(sha256: Sequence[str], bits: np.ndarray, max_distance: int = NEAR_DISTANCE) -> list[Group]:
    """Connected groups of identical files (same sha256) and of near-identical pictures (pHash distance)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sha256)
    rows, cols, dist = _near_pairs(bits, max_distance)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    count, component = connected_components(graph, directed=False)
    widest = np.zeros(count, dtype=np.int64)  # the largest pair distance inside each component
    np.maximum.at(widest, component[rows], dist)
    groups = []
    for comp in np.flatnonzero(np.bincount(component, minlength=count) > 1):
        members = np.flatnonzero(component == comp).tolist()
        exact = len({sha256[i] for i in members}) == 1
        groups.append(Group("exact" if exact else "near", members, int(widest[comp])))
    return groups


def _near_pairs(bits: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, distances) of every pair i < j within ``max_distance`` bits, a block of rows at a time."""
    packed = np.packbits(bits, axis=1)
    popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)
    rows, cols, dist = [], [], []
    for start in range(0, len(packed), _CHUNK):
        block = packed[start:start + _CHUNK]
        d = popcount[block[:, None, :] ^ packed[None, :, :]].sum(axis=2, dtype=np.int32)
        r, c = np.nonzero(d <= max_distance)
        r += start
        keep = r < c
        rows.append(r[keep])
        cols.append(c[keep])
        dist.append(d[r[keep] - start, c[keep]])
    return (np.concatenate(rows) if rows else np.zeros(0, int), np.concatenate(cols) if cols else np.zeros(0, int),
            np.concatenate(dist) if dist else np.zeros(0, int))


def check(items: list[Item], pixels: np.ndarray, unreadable: Sequence[dict] = ()) -> DataCheck:
    """Run every check on readable ``items`` and their decoded ``pixels`` (same order)."""
    groups = find_groups([it.sha256 for it in items], perceptual_hashes(pixels))
    return DataCheck(items=list(items), groups=groups, unreadable=list(unreadable))


def items_of(root: Path, listed, cache) -> list[Item]:
    """Items for the readable files of ``listed`` (:class:`~.dataset.ImageFile` per file) decoded into ``cache``;
    the split is the source folder until the splits are made ("all" for a flat dataset)."""
    files = [listed[i] for i in cache.keep]
    return [Item(f.folder or "all", f.label, Path(f.path).resolve().relative_to(root).as_posix(), sha)
            for f, sha in zip(files, cache.sha256)]


def check_folder(root: str | Path, image_size: int = 224, *, quiet: bool = False) -> tuple[DataCheck, list[str]]:
    """``edgeclf data check DIR``: find the dataset's images, decode them (as training would) and check them."""
    from .cache import decode_all
    from .dataset import discover

    check_image_size(image_size)
    layout = discover(root)
    listed = list(layout.files())
    with tempfile.TemporaryDirectory(prefix="edgeclf-check-") as scratch:
        cache = decode_all([f.path for f in listed], image_size, cache_dir=Path(scratch), quiet=quiet)
        return check(items_of(layout.root, listed, cache), cache.pixels, cache.skipped), list(layout.labels)


def after_split(found: DataCheck, chosen: dict[str, list[int]], moved: list[dict], *, strict: bool) -> DataCheck:
    """Put each item in the split it ended up in (after ``moved``), then refuse with ``strict`` when duplicates
    still leak across splits or carry two labels."""
    for name, indices in chosen.items():
        for i in indices:
            found.items[i].split = name
    found.moved = list(moved)
    leaking, conflicting = found.leaking(), found.conflicting()
    if strict and (leaking or conflicting):
        raise UsageError(f"data check: {len(leaking)} duplicate group(s) leak across splits and {len(conflicting)} "
                         "carry two labels (--strict-data)",
                         "see the list with: edgeclf data check DIR, fix the files, or drop --strict-data")
    return found


def check_and_split(layout, listed, cache, make_splits, *, strict: bool, out_dir: Path, quiet: bool = False):
    """Train's data step: check the decoded dataset, make the splits keeping duplicate groups together
    (``make_splits(keep_together=...)``), write data_check.json, print the findings. Returns (splits, chosen,
    the brief that edgeclf.json records)."""
    found = check(items_of(layout.root, listed, cache), cache.pixels, cache.skipped)
    splits, chosen = make_splits(keep_together=[g.members for g in found.groups])
    report = after_split(found, chosen, splits.moved, strict=strict).to_dict(layout.labels)
    atomic_write_json(Path(out_dir) / CHECK_FILE, report)
    for line in summary_lines(report, per_class=True):
        note(f"data check: {line}", quiet=quiet)
    return splits, chosen, brief(report)


def brief(report: dict) -> dict:
    """The counts of data_check.json, for edgeclf.json (the lists stay in the file)."""
    return {"file": CHECK_FILE, **{k: report[k] for k in ("exact_duplicates", "near_duplicates", "leakage",
                                                          "label_conflicts")},
            "moved": len(report["moved"]), "balance": report["balance"]}


def class_weights(train_labels: np.ndarray, k: int) -> dict[int, float] | None:
    """Inverse-frequency weights (n / (k * count)) when the largest class is >= IMBALANCE_RATIO x the smallest."""
    counts = np.bincount(train_labels, minlength=k)
    if counts.min() == 0 or counts.max() / counts.min() < IMBALANCE_RATIO:
        return None
    return {i: round(float(len(train_labels) / (k * c)), 6) for i, c in enumerate(counts)}


def balance(items: Sequence[Item], labels: Sequence[str]) -> dict:
    """Images per split and class, the train imbalance ratio and the class weights training uses for it."""
    counts = {split: {label: 0 for label in labels} for split in _present_splits(items)}
    for it in items:
        counts[it.split][it.label] += 1
    source = "train" if "train" in counts else next(iter(counts), None)  # before splitting: the one folder
    train = counts.get(source, {})
    index = {label: i for i, label in enumerate(labels)}
    weights = class_weights(np.array([index[it.label] for it in items if it.split == source], dtype=np.int64),
                            len(labels)) if train else None
    smallest = min(train, key=train.get) if train else None
    return {"counts": counts, "of": source,
            "ratio": round(max(train.values()) / train[smallest], 3) if train and train[smallest] else None,
            "largest": max(train, key=train.get) if train else None, "smallest": smallest,
            "class_weight": {labels[k]: v for k, v in weights.items()} if weights else None}


def summary_lines(report: dict, *, per_class: bool = False) -> list[str]:
    """The lines a person reads: counts of each finding and what they mean, then the class balance (with each
    class's train images and weight when ``per_class``)."""
    ex, near, leak, conf = (report[k] for k in ("exact_duplicates", "near_duplicates", "leakage", "label_conflicts"))
    lines = [f"{ex['groups']} group(s) of exact duplicates ({ex['files']} files), {near['groups']} of near-duplicates "
             f"({near['files']} files)"]
    if leak["groups"]:
        where = ", ".join(f"{k}: {v}" for k, v in leak["by_splits"].items())
        lines.append(f"leakage: {leak['groups']} duplicate group(s) span splits ({where}); a test score on them is "
                     "inflated")
    if conf["groups"]:
        lines.append(f"label conflicts: {conf['groups']} duplicate group(s) are filed under different classes")
    if report["moved"]:
        lines.append(f"moved {len(report['moved'])} near-duplicate file(s) so each group sits in one split")
    if report["unreadable"]:
        lines.append(f"unreadable: {len(report['unreadable'])} file(s) skipped")
    b = report["balance"]
    if b["ratio"] == 1:
        lines.append("class balance: every class has the same number of images; no class weights")
    elif b["ratio"]:
        weighted = "class weights used" if b["class_weight"] else "no class weights (balanced enough)"
        lines.append(f"class balance: largest {b['largest']} is {b['ratio']:g}x the smallest {b['smallest']}; "
                     f"{weighted}")
    if per_class and b["of"]:
        weights = b["class_weight"] or {}
        lines.append(f"{b['of']} images per class" + (" (weight)" if weights else "") + ": " + ", ".join(
            f"{label} {n}" + (f" ({weights[label]:.2f})" if weights else "") for label, n in b["counts"][b["of"]].items()))
    return lines


def _tally(groups: Sequence[Group]) -> dict:
    return {"groups": len(groups), "files": sum(len(g.members) for g in groups)}


def _present_splits(items: Sequence[Item]) -> list[str]:
    return sorted({it.split for it in items}, key=_split_order)


def _split_order(split: str) -> int:
    return SPLIT_NAMES.index(split) if split in SPLIT_NAMES else len(SPLIT_NAMES)
