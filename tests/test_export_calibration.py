"""int8 calibration reads a stratified sample of the training split and never a test (or validation) file.

The proof watches the interpreter itself: a ``sys.addaudithook`` records every file Python opens while calibration
runs, so it holds whatever code path decodes the images.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from edgeclf.errors import UsageError
from edgeclf.export.calibration import load_calibration, stratified_sample
from edgeclf.manifest import SplitEntry, Splits, load_splits

from tests.fixtures.models import run_export

_OPENED: list[str] | None = None


def _audit(event, args):
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.path.realpath(os.fsdecode(args[0])))


sys.addaudithook(_audit)  # hooks cannot be removed; this one records only while _OPENED is a list


def opened_during(fn, *args, **kwargs):
    global _OPENED
    _OPENED = []
    try:
        result = fn(*args, **kwargs)
        return result, list(_OPENED)
    finally:
        _OPENED = None


def split_paths(splits: Splits, name: str) -> set[str]:
    return {os.path.realpath(Path(splits.root) / e.path) for e in splits.files(name)}


def test_calibration_opens_only_training_files(tiny_run):
    splits = load_splits(tiny_run)
    assert splits.files("test") and splits.files("train")
    calibration, opened = opened_during(load_calibration, splits, (96, 96), 1000, quiet=True)
    dataset_files = {p for p in opened if p.startswith(os.path.realpath(splits.root))}
    assert dataset_files == split_paths(splits, "train")  # every training image (1000 > count), nothing else
    assert not dataset_files & (split_paths(splits, "test") | split_paths(splits, "validation"))
    assert calibration.images.shape == (len(splits.files("train")), 96, 96, 3)


def test_mirrored_calibration_adds_each_images_mirror_and_opens_nothing_more(tiny_run):
    splits = load_splits(tiny_run)
    plain = load_calibration(splits, (96, 96), 6, quiet=True)
    mirrored, opened = opened_during(load_calibration, splits, (96, 96), 6, mirror=True, quiet=True)
    assert mirrored.mirrored and not plain.mirrored and mirrored.paths == plain.paths
    assert (mirrored.images[:6] == plain.images).all()
    assert (mirrored.images[6:] == plain.images[:, :, ::-1]).all()  # width axis: left and right swap
    assert not (mirrored.images[6:] == plain.images).all()
    assert {p for p in opened if p.startswith(os.path.realpath(splits.root))} <= split_paths(splits, "train")


def test_full_export_never_opens_a_test_file_for_calibration(tiny_run, tmp_path):
    """Through the whole export: test files are opened for validation only, so the calibration record must be a
    subset of the training split, and with the sample covering all of it the opened training files match exactly."""
    splits = load_splits(tiny_run)
    report, opened = opened_during(run_export, tiny_run, tmp_path / "out", ("int8",), max_drop=100.0,
                                   min_agreement=0.0, calibration_samples=5)
    train = {e.path for e in splits.files("train")}
    assert set(report["calibration"]["paths"]) <= train and len(report["calibration"]["paths"]) == 5
    assert report["calibration"]["mirrored"] and report["calibration"]["inputs"] == 10  # the default: and mirrors
    used = {os.path.realpath(Path(splits.root) / p) for p in report["calibration"]["paths"]}
    opened_train = {p for p in opened if p in split_paths(splits, "train")}
    assert opened_train == used  # the 5 recorded files are exactly the training files that were opened
    assert not set(opened) & split_paths(splits, "validation")


def entries(counts: dict[str, int]) -> list[SplitEntry]:
    return [SplitEntry(f"{label}/{i:04d}.jpg", label, "") for label, n in counts.items() for i in range(n)]


def test_stratified_sample_keeps_class_shares_and_is_deterministic():
    pool = entries({"cat": 600, "dog": 300, "eel": 100})
    sample = stratified_sample(pool, 200, seed=3)
    assert Counter(e.label for e in sample) == {"cat": 120, "dog": 60, "eel": 20}
    assert [e.path for e in sample] == [e.path for e in stratified_sample(pool, 200, seed=3)]
    assert [e.path for e in sample] != [e.path for e in stratified_sample(pool, 200, seed=4)]
    assert len({e.path for e in sample}) == 200


def test_stratified_sample_keeps_every_class_even_when_tiny():
    sample = stratified_sample(entries({"common": 990, "rare": 10}), 10)
    assert Counter(e.label for e in sample)["rare"] >= 1 and len(sample) == 10
    assert len(stratified_sample(entries({"a": 3, "b": 2}), 50)) == 5  # fewer than asked: all of them
    assert Counter(e.label for e in stratified_sample(entries({"a": 12, "b": 12}), 5)) == {"a": 3, "b": 2}


def test_empty_training_split_is_a_clear_error(tiny_run, tmp_path):
    data = json.loads((tiny_run / "splits.json").read_text())
    data["splits"]["train"] = []
    splits = Splits.from_dict(data)
    with pytest.raises(UsageError, match="empty training split"):
        load_calibration(splits, (96, 96), 10, quiet=True)


def test_unreadable_calibration_images_are_skipped_and_listed(tiny_run, tmp_path):
    data = json.loads((tiny_run / "splits.json").read_text())
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    data["splits"]["train"].append({"path": str(broken), "label": data["labels"][0], "sha256": ""})
    calibration = load_calibration(Splits.from_dict(data), (96, 96), 1000, quiet=True)
    assert calibration.skipped and calibration.skipped[0].startswith(str(broken))
    assert len(calibration.paths) == len(data["splits"]["train"]) - 1
