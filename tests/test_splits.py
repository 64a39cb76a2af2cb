"""Splits are decided once: deterministic for a seed, stratified per class, recorded with sha256, never overlapping."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from edgeclf.errors import UsageError
from edgeclf.fsutil import sha256_file
from edgeclf.manifest import Splits
from edgeclf.train.dataset import discover
from edgeclf.train.splits import make_splits
from tests.fixtures.images import make_dataset


def split_dataset(root: Path, seed: int = 42, **kw):
    layout = discover(root)
    items = [(folder, label, path, sha256_file(path)) for folder, label, path in layout.files()]
    return make_splits(layout.root, layout.labels, items, seed=seed, **kw)


def paths(splits: Splits, name: str) -> list[str]:
    return [e.path for e in splits.files(name)]


@pytest.fixture(scope="module")
def flat_unbalanced(tmp_path_factory):
    root = tmp_path_factory.mktemp("flat")
    make_dataset(root, classes=("a", "b"), per_class=40)
    make_dataset(root, classes=("c",), per_class=20, seed=3)
    return root


def test_same_seed_same_splits_different_seed_different_splits(flat_unbalanced):
    one, _ = split_dataset(flat_unbalanced, seed=1)
    again, _ = split_dataset(flat_unbalanced, seed=1)
    other, _ = split_dataset(flat_unbalanced, seed=2)
    assert one.to_dict() == again.to_dict()
    assert one.fingerprint == again.fingerprint
    assert paths(one, "test") != paths(other, "test")
    assert one.fingerprint != other.fingerprint


def test_flat_folder_is_split_70_15_15_per_class(flat_unbalanced):
    splits, _ = split_dataset(flat_unbalanced)
    per = {name: Counter(e.label for e in splits.files(name)) for name in ("train", "validation", "test")}
    assert per["test"] == {"a": 6, "b": 6, "c": 3}
    assert per["validation"] == {"a": 6, "b": 6, "c": 3}
    assert per["train"] == {"a": 28, "b": 28, "c": 14}
    assert "flat" in splits.strategy and "70%" in splits.strategy


def test_splits_are_disjoint_and_cover_every_image(flat_unbalanced):
    splits, chosen = split_dataset(flat_unbalanced)
    all_paths = [p for name in ("train", "validation", "test") for p in paths(splits, name)]
    assert len(all_paths) == len(set(all_paths)) == 100
    assert sorted(i for idx in chosen.values() for i in idx) == list(range(100))


def test_entries_record_relative_path_label_and_content_hash(flat_unbalanced):
    splits, _ = split_dataset(flat_unbalanced)
    for entry in splits.files("test"):
        file = Path(splits.root) / entry.path
        assert not Path(entry.path).is_absolute() and entry.path.split("/")[0] == entry.label
        assert entry.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
    assert splits.fingerprint == splits.compute_fingerprint()
    assert Splits.from_dict(splits.to_dict()).to_dict() == splits.to_dict()


def test_train_validation_folders_carve_test_from_validation(tmp_path):
    make_dataset(tmp_path, per_class=20, layout="split")  # 20 train + 10 validation per class
    splits, _ = split_dataset(tmp_path)
    assert {e.path.split("/")[0] for e in splits.files("train")} == {"train"}
    assert len(splits.files("train")) == 40
    for name in ("validation", "test"):
        assert {e.path.split("/")[0] for e in splits.files(name)} == {"validation"}
        assert Counter(e.label for e in splits.files(name)) == {"cats": 5, "dogs": 5}
    assert "test = 50% of validation/" in splits.strategy


def test_three_folders_are_used_as_they_are(tmp_path):
    make_dataset(tmp_path, per_class=12, layout="split3")
    splits, _ = split_dataset(tmp_path)
    for name in ("train", "validation", "test"):
        assert {e.path.split("/")[0] for e in splits.files(name)} == {name}
    assert splits.strategy == "folders:train,validation,test"


def test_train_and_test_folders_carve_validation_from_train(tmp_path):
    make_dataset(tmp_path / "tmp", per_class=20, layout="split3")
    (tmp_path / "tmp" / "train").rename(tmp_path / "train")
    (tmp_path / "tmp" / "test").rename(tmp_path / "test")
    splits, _ = split_dataset(tmp_path)
    assert {e.path.split("/")[0] for e in splits.files("validation")} == {"train"}
    assert Counter(e.label for e in splits.files("validation")) == {"cats": 3, "dogs": 3}


def test_tiny_class_that_cannot_fill_every_split_is_refused(tmp_path):
    make_dataset(tmp_path, classes=("a", "b"), per_class=2)
    with pytest.raises(UsageError, match="split has no images of class"):
        split_dataset(tmp_path)


@pytest.mark.e2e
def test_cats_and_dogs_filtered_gives_2000_train_500_validation_500_test(cats_dogs_dir):
    splits, _ = split_dataset(cats_dogs_dir)
    assert len(splits.files("train")) == 2000
    assert len(splits.files("validation")) == 500 and len(splits.files("test")) == 500
    assert Counter(e.label for e in splits.files("test")) == {"cats": 250, "dogs": 250}
    val = set(paths(splits, "validation"))
    assert not val & set(paths(splits, "test"))
