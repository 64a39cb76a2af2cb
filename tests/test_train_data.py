"""Dataset discovery (layouts, refusals) and the decode-once cache (same pixels as the runtime, bad files listed)."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from edgeclf.errors import UsageError
from edgeclf.runtime.preprocess import load_image
from edgeclf.train.cache import decode_all
from edgeclf.train.dataset import discover
from tests.fixtures.images import make_dataset

GOOD = ["ok", "cmyk", "grey", "rgba", "palette", "grey16", "exif_rotated"]
BAD = ["zero", "notimage", "truncated", "corrupt"]


def test_flat_layout_classes_are_sorted_folder_names(tmp_path):
    make_dataset(tmp_path, classes=("zebra", "ant", "moth"), per_class=3)
    (tmp_path / ".hidden").mkdir()
    layout = discover(tmp_path)
    assert layout.labels == ["ant", "moth", "zebra"]
    assert layout.kind == "flat"
    assert len(list(layout.files())) == 9


def test_split_layout_is_recognised_with_val_alias(tmp_path):
    make_dataset(tmp_path, per_class=4, layout="split")
    (tmp_path / "validation").rename(tmp_path / "val")
    layout = discover(tmp_path)
    assert layout.kind == "folders:train,validation"
    assert layout.labels == ["cats", "dogs"]


@pytest.mark.parametrize("case", ["one_class", "no_class", "empty_class", "mismatch", "no_train", "missing", "file"])
def test_unusable_datasets_are_refused_with_one_line_naming_the_problem(tmp_path, case):
    root = tmp_path / "data"
    expected = {"one_class": "need at least 2", "no_class": "found 0 class folders", "empty_class": "no images",
                "mismatch": "different classes from train/", "no_train": "no train/", "missing": "not found",
                "file": "not a folder"}[case]
    if case == "one_class":
        make_dataset(root, classes=("cats",), per_class=3)
    elif case == "no_class":
        root.mkdir()
    elif case == "empty_class":
        make_dataset(root, per_class=3)
        (root / "birds").mkdir()
        (root / "birds" / "notes.txt").write_text("not an image")
    elif case == "mismatch":
        make_dataset(root, per_class=4, layout="split")
        shutil.rmtree(root / "validation" / "dogs")
        make_dataset(root / "validation", classes=("birds",), per_class=2)
    elif case == "no_train":
        make_dataset(root / "validation", per_class=2)
    elif case == "file":
        root.write_text("x")
    with pytest.raises(UsageError) as info:
        discover(root)
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert str(root) in message or case == "empty_class" and str(root / "birds") in message


def test_mismatch_names_the_missing_and_extra_classes(tmp_path):
    make_dataset(tmp_path, per_class=4, layout="split")
    shutil.rmtree(tmp_path / "validation" / "dogs")
    make_dataset(tmp_path / "validation", classes=("birds",), per_class=2)
    with pytest.raises(UsageError, match="missing dogs; extra birds"):
        discover(tmp_path)


def test_cache_pixels_equal_runtime_load_image_bit_for_bit(bad_images, tmp_path):
    files = [bad_images[c] for c in GOOD] + sorted(make_dataset(tmp_path / "d", per_class=3).rglob("*.jpg"))
    for size in (96, 33):
        cache = decode_all(files, size, quiet=True)
        assert cache.pixels.dtype == np.uint8 and cache.pixels.shape == (len(files), size, size, 3)
        for i, path in enumerate(files):
            np.testing.assert_array_equal(cache.pixels[i], load_image(path, (size, size)))
            assert cache.sha256[i] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unreadable_files_are_skipped_counted_and_listed_with_a_reason(bad_images):
    files = [bad_images[c] for c in GOOD + BAD]
    cache = decode_all(files, 32, quiet=True)
    assert len(cache) == len(GOOD) and cache.pixels.shape[0] == len(GOOD)
    assert [str(p) for p in cache.paths] == [str(bad_images[c]) for c in GOOD]
    assert [s["path"] for s in cache.skipped] == [str(bad_images[c]) for c in BAD]
    reasons = {s["path"]: s["reason"] for s in cache.skipped}
    assert "empty" in reasons[str(bad_images["zero"])]
    assert "not an image" in reasons[str(bad_images["notimage"])]
    assert all(r and "\n" not in r for r in reasons.values())


def test_disk_cache_is_a_memmap_with_the_same_pixels(tmp_path):
    files = sorted(make_dataset(tmp_path / "d", per_class=4).rglob("*.jpg"))
    in_memory = decode_all(files, 48, quiet=True, mode="memory")
    on_disk = decode_all(files, 48, quiet=True, mode="disk", cache_dir=tmp_path / "cache")
    assert in_memory.on_disk is None and on_disk.on_disk is not None and on_disk.on_disk.exists()
    assert isinstance(on_disk.pixels, np.memmap)
    np.testing.assert_array_equal(np.asarray(on_disk.pixels), in_memory.pixels)


def test_unaugmented_batches_are_the_cached_pixels_in_order(tmp_path):
    from edgeclf.train.pipeline import batches

    files = sorted(make_dataset(tmp_path / "d", per_class=5).rglob("*.jpg"))
    cache = decode_all(files, 40, quiet=True)
    labels = np.arange(len(files)) % 2
    order = [7, 1, 3, 0, 9]
    got = [(x.numpy(), y.numpy()) for x, y in batches(cache.pixels, labels, order, batch_size=2)]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), cache.pixels[order])
    np.testing.assert_array_equal(np.concatenate([y for _, y in got]), labels[order])
    assert got[0][0].dtype == np.uint8


def test_augmented_batches_stay_uint8_and_change_the_pixels(tmp_path):
    from edgeclf.train.pipeline import batches

    files = sorted(make_dataset(tmp_path / "d", per_class=4).rglob("*.jpg"))
    cache = decode_all(files, 48, quiet=True)
    labels = np.zeros(len(files), np.int32)
    x, y = next(iter(batches(cache.pixels, labels, range(8), batch_size=8, augment=True, seed=3)))
    assert x.dtype == "uint8" and tuple(x.shape) == (8, 48, 48, 3)
    assert not np.array_equal(x.numpy(), cache.pixels[:8])
