"""Decode every image once, through the runtime's one preprocessing path, into a uint8 array.

Epochs then read pixels from memory (or from an ``np.memmap`` on disk when the dataset would not fit comfortably),
instead of re-decoding JPEGs every epoch. Each file is read once: the same bytes are hashed (sha256 for
``splits.json``) and decoded, so the recorded hash is exactly what was trained on. Unreadable files are skipped,
counted and listed, never silently dropped.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.console import progress
from edgeclf.errors import ImageError, os_error_reason
from edgeclf.runtime.preprocess import load_image

# Above this many bytes of decoded pixels, the cache is a memory-mapped file instead of RAM.
MEMORY_LIMIT = int(os.environ.get("EDGECLF_CACHE_MEMORY_LIMIT", 2 << 30))


@dataclass
class ImageCache:
    """Decoded images ``pixels[i]`` (uint8, (S, S, 3)) for the readable files, in input order."""

    pixels: np.ndarray
    paths: list[Path]
    sha256: list[str]
    keep: list[int]  # index into the input list for every row of ``pixels``
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"} for unreadable files
    on_disk: Path | None = None

    def __len__(self) -> int:
        return len(self.paths)


def decode_all(paths: Sequence[Path], image_size: int, *, cache_dir: Path | None = None, quiet: bool = False,
               workers: int | None = None, mode: str = "auto") -> ImageCache:
    """Hash and decode ``paths`` to (image_size, image_size) uint8 RGB; ``mode`` is memory, disk or auto."""
    n = len(paths)
    nbytes = n * image_size * image_size * 3
    use_disk = mode == "disk" or (mode == "auto" and nbytes > MEMORY_LIMIT and cache_dir is not None)
    if use_disk:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        file = cache_dir / f"images-{image_size}.u8"
        pixels = np.lib.format.open_memmap(file, mode="w+", dtype=np.uint8, shape=(n, image_size, image_size, 3))
    else:
        file = None
        pixels = np.empty((n, image_size, image_size, 3), np.uint8)

    size = (image_size, image_size)

    def work(path: Path):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            reason, _ = os_error_reason(exc, path)
            return None, reason
        digest = hashlib.sha256(data).hexdigest()
        try:
            if not data:
                raise ImageError(path, "empty file (0 bytes)")
            return (digest, load_image(data, size)), None
        except ImageError as exc:
            return None, exc.reason

    keep, sha, skipped, good_paths = [], [], [], []
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        bar = progress(pool.map(work, paths), total=n, desc="decoding images", quiet=quiet, unit="img")
        for i, (result, reason) in enumerate(bar):
            if result is None:
                skipped.append({"path": str(paths[i]), "reason": reason})
                continue
            pixels[len(keep)] = result[1]
            keep.append(i)
            sha.append(result[0])
            good_paths.append(Path(paths[i]))
    pixels = pixels[: len(keep)]
    if use_disk:
        pixels.flush()
    return ImageCache(pixels=pixels, paths=good_paths, sha256=sha, keep=keep, skipped=skipped, on_disk=file)
