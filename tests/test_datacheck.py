"""Data checks: duplicates (exact and near), leakage across splits, label conflicts, class balance, and what train
does with them (moves what it split apart itself, refuses with --strict-data); `edgeclf data check`."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeclf.cli import cli
from edgeclf.errors import UsageError
from edgeclf.runtime.preprocess import list_images, load_image
from edgeclf.train import datacheck
from edgeclf.train.datacheck import Item, class_weights, find_groups, perceptual_hashes
from edgeclf.train.dataset import discover
from edgeclf.train.splits import make_splits
from tests.fixtures.images import make_dataset, synthetic_image


def reencoded(path_or_image, scale: float, quality: int) -> bytes:
    """A resized, re-encoded JPEG copy: what a phone's "share" or a web download does to a photo."""
    image = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image).convert("RGB")
    small = image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))),
                         Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality)
    return out.getvalue()


def sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# ---- the finder on real photos ----------------------------------------------------------------------------------

@pytest.mark.e2e
def test_finder_catches_reencoded_resized_copies_and_flags_no_distinct_real_photo(clothing_dir):
    # 25 photos of every class: garments of one kind on similar floors and beds, the hard case for a perceptual hash
    paths = [p for label in sorted(d.name for d in (clothing_dir / "train").iterdir())
             for p in list_images(clothing_dir / "train" / label)[:25]]
    files = [p.read_bytes() for p in paths]
    copies = [reencoded(paths[0], 0.5, 70), reencoded(paths[60], 0.3, 60), reencoded(paths[130], 0.8, 85),
              files[200]]  # three re-encoded, resized copies and one byte-identical copy
    data = files + copies
    pixels = np.stack([load_image(d, (224, 224)) for d in data])
    groups = find_groups([sha(d) for d in data], perceptual_hashes(pixels))
    n = len(files)
    found = {tuple(g.members): g.kind for g in groups}
    assert found == {(0, n): "near", (60, n + 1): "near", (130, n + 2): "near", (200, n + 3): "exact"}
    assert all(g.distance <= datacheck.NEAR_DISTANCE for g in groups)


def test_finder_on_synthetic_images_groups_copies_only():
    images = [synthetic_image(i % 2, 500 + i, (120, 90)) for i in range(30)]
    data = [_jpeg(im) for im in images] + [reencoded(images[3], 0.6, 75), _jpeg(images[7])]
    pixels = np.stack([load_image(d, (96, 96)) for d in data])
    groups = find_groups([sha(d) for d in data], perceptual_hashes(pixels))
    assert sorted((g.kind, g.members) for g in groups) == [("exact", [7, 31]), ("near", [3, 30])]


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


# ---- leakage, conflicts, balance --------------------------------------------------------------------------------

def _check(entries: list[tuple[str, str, int]]) -> datacheck.DataCheck:
    """entries: (split, label, image id); the same id twice is the same picture (the second one re-encoded)."""
    seen, items, pixels = set(), [], []
    for n, (split, label, image_id) in enumerate(entries):
        image = synthetic_image(image_id % 2, 900 + image_id, (120, 90))
        data = reencoded(image, 0.7, 80) if image_id in seen else _jpeg(image)
        seen.add(image_id)
        items.append(Item(split, label, f"{split}/{label}/{n}.jpg", sha(data)))
        pixels.append(load_image(data, (96, 96)))
    return datacheck.check(items, np.stack(pixels))


def test_duplicates_across_splits_are_leakage_and_across_classes_conflicts():
    found = _check([("train", "cats", 1), ("test", "cats", 1),  # leak
                    ("train", "cats", 2), ("train", "dogs", 2),  # conflict
                    ("train", "dogs", 3), ("train", "dogs", 3),  # harmless duplicate
                    ("train", "cats", 4), ("validation", "dogs", 5), ("test", "dogs", 6)])
    report = found.to_dict(["cats", "dogs"])
    assert report["near_duplicates"] == {"groups": 3, "files": 6} and report["exact_duplicates"]["groups"] == 0
    assert report["leakage"] == {"groups": 1, "files": 2, "by_splits": {"train+test": 1}}
    assert report["label_conflicts"] == {"groups": 1, "files": 2}
    assert [(g["leak"], g["conflict"]) for g in report["groups"]] == [(True, False), (False, True), (False, False)]
    assert report["balance"]["counts"]["train"] == {"cats": 3, "dogs": 3}
    lines = datacheck.summary_lines(report)
    assert any(line.startswith("leakage: 1 duplicate group(s) span splits (train+test: 1)") for line in lines)
    assert any(line.startswith("label conflicts: 1") for line in lines)


def test_class_weights_are_inverse_frequency_only_when_imbalanced():
    # 6 + 2 images: weights n / (k * count) = 8 / 12 and 8 / 4
    assert class_weights(np.array([0] * 6 + [1] * 2), 2) == {0: pytest.approx(0.666667), 1: 2.0}
    assert class_weights(np.array([0] * 5 + [1] * 4), 2) is None  # 1.25x: balanced enough


# ---- what train does with them ----------------------------------------------------------------------------------

def _flat_with_copies(root: Path, copies: int = 10) -> Path:
    """A flat 2-class dataset where each of the first ``copies`` cats has a re-encoded copy beside it."""
    data = make_dataset(root, per_class=20, size=(120, 90))
    for i in range(copies):
        original = data / "cats" / f"cats_{i:03d}.jpg"
        (data / "cats" / f"copy_{i:03d}.jpg").write_bytes(reencoded(Image.open(original).convert("RGB"), 0.7, 80))
    return data


def _split_with_checks(data: Path, **kw):
    from edgeclf.train.cache import decode_all

    layout = discover(data)
    listed = list(layout.files())
    cache = decode_all([p for *_, p in listed], 96, quiet=True)
    items = [(listed[i][0], listed[i][1], listed[i][2], s) for i, s in zip(cache.keep, cache.sha256)]
    found = datacheck.check(datacheck.items_of(layout.root, listed, cache), cache.pixels)
    splits, chosen = make_splits(layout.root, layout.labels, items, seed=3,
                                 keep_together=[g.members for g in found.groups])
    return found, splits, chosen, kw


def test_carved_splits_keep_each_duplicate_group_in_one_split(tmp_path):
    found, splits, chosen, _ = _split_with_checks(_flat_with_copies(tmp_path / "data"))
    assert len(found.groups) == 10
    where = {i: name for name, idx in chosen.items() for i in idx}
    assert all(len({where[i] for i in g.members}) == 1 for g in found.groups)
    # without keep_together the seeded carve does split some pair apart, so the moves are real
    layout = discover(tmp_path / "data")
    plain, plain_chosen = make_splits(layout.root, layout.labels, [
        (f, lab, p, str(n)) for n, (f, lab, p) in enumerate(layout.files())], seed=3)
    assert plain.moved == [] and splits.moved
    assert all(m["to"] in ("train", "validation") and m["from"] != m["to"] for m in splits.moved)
    assert "moved so each duplicate group sits in one split" in splits.strategy
    report = datacheck.after_split(found, chosen, splits.moved, strict=True).to_dict(layout.labels)
    assert report["leakage"]["groups"] == 0 and len(report["moved"]) == len(splits.moved)


def test_own_split_folders_are_never_refiled_and_strict_refuses(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=10, layout="split3", size=(120, 90))
    shutil.copy(data / "train" / "dogs" / "dogs_002.jpg", data / "test" / "dogs" / "leaked.jpg")
    found, splits, chosen, _ = _split_with_checks(data)
    assert splits.moved == []
    found = datacheck.after_split(found, chosen, splits.moved, strict=False)
    assert [g.splits(found.items) for g in found.leaking()] == [["train", "test"]]
    with pytest.raises(UsageError, match=r"1 duplicate group\(s\) leak across splits .*--strict-data"):
        datacheck.after_split(found, chosen, splits.moved, strict=True)


# ---- edgeclf data check -----------------------------------------------------------------------------------------

def test_data_check_cli_lists_findings_as_json_and_text(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=8, layout="split3", size=(120, 90))
    shutil.copy(data / "train" / "cats" / "cats_001.jpg", data / "test" / "dogs" / "oops.jpg")
    result = CliRunner().invoke(cli, ["data", "check", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["exact_duplicates"] == {"groups": 1, "files": 2}
    assert report["leakage"]["by_splits"] == {"train+test": 1} and report["label_conflicts"]["groups"] == 1
    assert {f["path"] for f in report["groups"][0]["files"]} == {"train/cats/cats_001.jpg", "test/dogs/oops.jpg"}
    text = CliRunner().invoke(cli, ["data", "check", str(data), "-q"])
    assert text.exit_code == 0 and text.output == ""
    text = CliRunner().invoke(cli, ["data", "check", str(data)])
    assert "leakage: 1 duplicate group(s)" in text.stderr and "test/dogs/oops.jpg" in text.stderr
    assert CliRunner().invoke(cli, ["data", "check", str(data), "--strict", "-q"]).exit_code == 1


def test_data_check_cli_bad_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["data", "check", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "folder not found" in result.stderr
