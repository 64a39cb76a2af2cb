"""The contracts between stages, as files on disk.

A run directory (written by ``edgeclf train``) holds::

    model.keras      the float Keras model: uint8 RGB in (H, W, 3), per-class probabilities out
    edgeclf.json     the manifest below
    splits.json      the exact train/validation/test file lists with sha256 (see Splits)
    labels.txt       one class name per line, in output order
    history.json     per-epoch metrics of both phases
    *.png            learning curves, confusion matrix

``export`` reads all of them; the runtime only needs a .tflite (labels and input contract embedded) or, failing that,
a labels file or a sibling edgeclf.json. The file names, the input contract and the labels format are defined in
:mod:`edgeclf.contracts`. This module never imports TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .contracts import MANIFEST_FILE, MANIFEST_FORMAT, SPLITS_FILE, SPLITS_FORMAT, InputContract
from .errors import UsageError, os_error_reason
from .fsutil import atomic_write_json


def _from_record(cls, data: dict, format: str, convert, invalid: str):
    """``cls`` from a JSON record of ``format``: a missing or malformed key is one line naming the file."""
    try:
        if data.get("format") != format:
            raise KeyError("format")
        return cls(**convert(dict(data)))
    except (KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{invalid} (bad or missing {exc})", "re-run edgeclf train or restore the file") from None


@dataclass
class Manifest:
    labels: list[str]
    input: InputContract
    base_model: dict[str, Any] = field(default_factory=dict)  # {"name": "MobileNetV2", "alpha": 1.0, "weights": ...}
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)  # {"source", "root", "fingerprint", "counts", "skipped"}
    versions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # {"test": edgeclf.runtime.metrics.score(...), ...}
    created: str = ""
    format: str = MANIFEST_FORMAT

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = MANIFEST_FILE) -> "Manifest":
        def convert(fields: dict) -> dict:
            fields["input"] = InputContract(**fields["input"])
            labels = fields["labels"]
            if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
                raise KeyError("labels")
            return fields

        return _from_record(cls, data, MANIFEST_FORMAT, convert, f"{source} is not a valid edgeclf manifest")

    def save(self, run_dir: str | Path) -> Path:
        return atomic_write_json(Path(run_dir) / MANIFEST_FILE, self.to_dict())


def read_json(path: str | Path, what: str) -> dict:
    """Read a JSON file or fail with a one-line error that names it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found", "is this an edgeclf run directory?") from None
    except PermissionError as exc:
        raise UsageError(f"{path}: {what}: {os_error_reason(exc)[0]}", os_error_reason(exc)[1]) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: {what} is unreadable or corrupt ({exc.__class__.__name__})",
                         "restore it or re-run edgeclf train") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: {what} is corrupt (not a JSON object)", "restore it or re-run edgeclf train")
    return data


def load_manifest(run_dir: str | Path) -> Manifest:
    path = Path(run_dir) / MANIFEST_FILE
    return Manifest.from_dict(read_json(path, "manifest"), source=str(path))


@dataclass
class SplitEntry:
    path: str  # relative to Splits.root, POSIX separators
    label: str
    sha256: str


@dataclass
class Splits:
    """The train/validation/test file lists decided once by ``train`` (ARCHITECTURE.md, "The test split is decided
    once")."""

    root: str  # absolute dataset root at training time
    seed: int
    labels: list[str]
    splits: dict[str, list[SplitEntry]]
    strategy: str = ""  # how the splits were made, e.g. "folders:train,validation; test carved from validation"
    fingerprint: str = ""  # sha256 over every (split, path, label, sha256), identifies the dataset exactly
    moved: list[dict] = field(default_factory=list)  # duplicates moved to keep each group in one split
    format: str = SPLITS_FORMAT

    def files(self, split: str) -> list[SplitEntry]:
        return self.splits.get(split, [])

    def require(self, split: str, name: str, consequence: str, fix: str) -> list[SplitEntry]:
        """The entries of ``split``, or a one-line error saying what an empty one means and what to do."""
        entries = self.files(split)
        if not entries:
            raise UsageError(f"{SPLITS_FILE} has an empty {name} split: {consequence}", fix)
        return entries

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = SPLITS_FILE) -> "Splits":
        def convert(fields: dict) -> dict:
            fields["splits"] = {name: [SplitEntry(**e) for e in entries] for name, entries in fields["splits"].items()}
            return fields

        return _from_record(cls, data, SPLITS_FORMAT, convert, f"{source} is not a valid edgeclf splits file")

    def compute_fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for name in sorted(self.splits):
            for e in self.splits[name]:
                # surrogateescape: a file name that is not UTF-8 hashes as its own bytes (lossless)
                h.update(f"{name}\0{e.path}\0{e.label}\0{e.sha256}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def save(self, run_dir: str | Path) -> Path:
        return atomic_write_json(Path(run_dir) / SPLITS_FILE, self.to_dict())


def load_splits(run_dir: str | Path) -> Splits:
    path = Path(run_dir) / SPLITS_FILE
    return Splits.from_dict(read_json(path, "splits file"), source=str(path))
