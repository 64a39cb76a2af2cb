"""Finding the labelled images in ``--data DIR``: which layout it uses, which classes, which files.

Two layouts are accepted:

* flat: ``DIR/<class>/*.jpg``: train, validation and test are all carved from it (see :mod:`edgeclf.train.splits`);
* split folders: ``DIR/train/<class>/`` plus optional ``DIR/validation/<class>/`` (``val/`` also accepted) and
  ``DIR/test/<class>/``, each with the same class folders; missing splits are carved from what is there.

Class names are the folder names, sorted. Anything that would make a useless or misleading run (fewer than two
classes, a class with no images, split folders whose class sets differ) is refused here with a one-line error,
before any decoding or training time is spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from edgeclf.errors import UsageError
from edgeclf.runtime.preprocess import list_images

SPLIT_FOLDERS = {"train": ("train",), "validation": ("validation", "val"), "test": ("test",)}


class ImageFile(NamedTuple):
    """One labelled image found in the dataset."""

    folder: str  # the split folder it came from ("train", "validation", "test"), "" for a flat dataset
    label: str
    path: Path


class ReadImage(NamedTuple):
    """An :class:`ImageFile` that decoded, with the sha256 of its bytes: what the splits are made of."""

    folder: str
    label: str
    path: Path
    sha256: str


@dataclass
class DatasetLayout:
    """What was found under the dataset root: per split folder, per class, the image files (absolute paths)."""

    root: Path
    labels: list[str]
    folders: dict[str, dict[str, list[Path]]] = field(default_factory=dict)  # "" = flat, else train/validation/test

    @property
    def kind(self) -> str:
        return "flat" if "" in self.folders else "folders:" + ",".join(self.folders)

    def files(self):
        """Yield an :class:`ImageFile` for every image, in a stable order."""
        for split, classes in self.folders.items():
            for label in self.labels:
                for path in classes[label]:
                    yield ImageFile(split, label, path)


def discover(root: str | Path) -> DatasetLayout:
    """Inspect ``root`` and return its layout, or raise a UsageError naming what is wrong and how to fix it."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UsageError(f"--data {root}: folder not found", "pass a folder with one sub-folder per class")
    if not root.is_dir():
        raise UsageError(f"--data {root}: not a folder", "pass a folder with one sub-folder per class")
    root = root.resolve()
    subdirs = {p.name: p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    split_dirs = {}
    for split, names in SPLIT_FOLDERS.items():
        for name in names:
            if name in subdirs:
                split_dirs[split] = subdirs[name]
                break
    if split_dirs:
        if "train" not in split_dirs:
            raise UsageError(f"--data {root}: has {'/'.join(d.name for d in split_dirs.values())}/ but no train/",
                             "add a train/ folder with one sub-folder per class, or use a flat class-per-folder layout")
        folders = {split: _classes_in(path) for split, path in split_dirs.items()}
        labels = sorted(folders["train"])
        for split, classes in folders.items():
            if sorted(classes) != labels:
                missing = sorted(set(labels) - set(classes))
                extra = sorted(set(classes) - set(labels))
                what = "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                               extra and f"extra {', '.join(extra)}"]))
                raise UsageError(f"--data {root}: {split_dirs[split].name}/ has different classes from train/ ({what})",
                                 "every split folder needs the same class sub-folders")
    else:
        folders = {"": _classes_in(root)}
        labels = sorted(folders[""])
    if len(labels) < 2:
        where = split_dirs["train"] if split_dirs else root
        raise UsageError(f"--data {where}: found {len(labels)} class folder{'s' if len(labels) != 1 else ''}"
                         f"{' (' + labels[0] + ')' if labels else ''}, need at least 2",
                         "put each class's images in its own sub-folder")
    for split, classes in folders.items():
        for label in labels:
            if not classes[label]:
                folder = (split_dirs[split] if split else root) / label
                raise UsageError(f"--data {folder}: class folder has no images",
                                 "add images (.jpg/.png/...) to it or remove the folder")
    return DatasetLayout(root=root, labels=labels, folders=folders)


def _classes_in(folder: Path) -> dict[str, list[Path]]:
    return {p.name: list_images(p) for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")}
