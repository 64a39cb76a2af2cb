"""The training data of a run, prepared once: images decoded into the cache, splits decided, labels as indices.

What the phases, the evaluation and the manifest need travels in one :class:`Prepared` object with named fields,
instead of tuples read by position.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from edgeclf.console import note
from edgeclf.errors import UsageError
from edgeclf.manifest import Splits

from . import datacheck
from .cache import ImageCache, decode_all
from .dataset import DatasetLayout, ReadImage
from .splits import make_splits


@dataclass
class Prepared:
    layout: DatasetLayout
    cache: ImageCache  # cache.pixels[i] is items[i]
    items: list[ReadImage]
    splits: Splits
    chosen: dict[str, list[int]]  # split name -> rows of the cache
    labels: np.ndarray  # class index per cache row
    decode_s: float
    data_check: dict  # the brief of data_check.json that edgeclf.json records

    @property
    def class_names(self) -> list[str]:
        return list(self.layout.labels)

    def rows(self, split: str) -> np.ndarray:
        return np.asarray(self.chosen[split], dtype=np.int64)

    def class_weight(self) -> dict[int, float] | None:
        """Balanced class weights for the train split when it is imbalanced, else None."""
        return datacheck.class_weights(self.labels[self.rows("train")], len(self.class_names))

    def counts(self) -> dict[str, dict[str, int]]:
        return {name: {lab: sum(1 for e in self.splits.files(name) if e.label == lab) for lab in self.class_names}
                for name in self.splits.splits}


def prepare(layout: DatasetLayout, opts, *, cache_dir: Path, out_dir: Path, quiet: bool = False) -> Prepared:
    """Decode every image of ``layout`` once (hashing the same bytes), check the data (duplicates, leakage; writes
    data_check.json into ``out_dir``) and split the readable images."""
    listed = list(layout.files())
    t0 = time.perf_counter()
    cache = decode_all([f.path for f in listed], opts.image_size, cache_dir=cache_dir, quiet=quiet,
                       mode=opts.cache)
    decode_s = time.perf_counter() - t0
    items = [ReadImage(*listed[i], sha) for i, sha in zip(cache.keep, cache.sha256)]
    _refuse_unreadable_classes(layout, listed, cache)
    split = partial(make_splits, layout.root, layout.labels, items, seed=opts.seed, val_fraction=opts.val_fraction,
                    test_fraction=opts.test_fraction)
    splits, chosen, data_check = datacheck.check_and_split(layout, listed, cache, split, strict=opts.strict_data,
                                                           out_dir=out_dir, quiet=quiet)
    labels = np.array([layout.labels.index(item.label) for item in items], dtype=np.int32)
    return Prepared(layout=layout, cache=cache, items=items, splits=splits, chosen=chosen, labels=labels,
                    decode_s=decode_s, data_check=data_check)


def _refuse_unreadable_classes(layout, listed: list, cache) -> None:
    """A class folder whose every image is unreadable: list those files on stderr, then refuse, naming the folder
    (no edgeclf.json will exist to list them in)."""
    kept = {(listed[i].folder, listed[i].label) for i in cache.keep}
    for split, label in dict.fromkeys((f.folder, f.label) for f in listed):
        if (split, label) in kept:
            continue
        folder = layout.root / split / label if split else layout.root / label
        bad = [item for item in cache.skipped if Path(item["path"]).is_relative_to(folder)]
        for item in bad:
            note(f"skipped: {item['path']}: {item['reason']}")
        raise UsageError(f"--data {folder}: class folder has no readable images ({len(bad)} unreadable, listed "
                         "above)", "replace them with readable images or remove the folder")
