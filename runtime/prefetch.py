"""Decode the next images while the interpreter runs on this one: folder prediction at the speed of its slower half.

Decoding a JPEG (Pillow, which releases the GIL while it decodes and resizes) and invoking the model are independent,
so a few decoder threads working ahead of the interpreter turn ``decode + invoke`` per image into roughly
``max(decode, invoke)``. Results come back in input order, through the one preprocessing path (``load_image``), and
at most ``depth`` decoded images wait in memory however long the folder is.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np

from edgeclf.errors import ImageError

from .machine import usable_cores
from .preprocess import load_image

Item = Union[Path, ImageError, str, os.PathLike]


def default_workers() -> int:
    """One decoder thread per two usable cores (1 on a 2-core machine, 2 on a 4-core Pi): decoding takes about a
    third of invoke's time, so more threads only take cores from the interpreter. Measured on 2 idle cores over 2,000
    JPEGs: 84.7 img/s without overlap, 95.7 with one decoder, 90.6 with two (runtime-scaling record, 2026-12-02)."""
    return max(1, usable_cores() // 2)


def _decode(item, size: tuple[int, int]) -> np.ndarray | ImageError:
    try:
        return load_image(item, size)
    except ImageError as exc:
        return exc


def decode_ahead(items: Iterable[Item], size: tuple[int, int], workers: int | None = None,
                 depth: int | None = None) -> Iterator[tuple[Item, np.ndarray | ImageError]]:
    """(item, uint8 array at ``size`` or the ImageError it raised) for every item, in order. Items that already are
    ImageErrors (e.g. a missing path) pass through. ``workers=0`` decodes in the calling thread (no overlap)."""
    workers = default_workers() if workers is None else workers
    if workers < 1:
        for item in items:
            yield item, item if isinstance(item, ImageError) else _decode(item, size)
        return
    depth = depth or 2 * workers
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgeclf-decode") as pool:
        try:
            for item in items:
                if isinstance(item, ImageError):
                    pending.append((item, None))
                else:
                    pending.append((item, pool.submit(_decode, item, size)))
                if len(pending) > depth:
                    yield _ready(pending.popleft())
            while pending:
                yield _ready(pending.popleft())
        finally:  # the consumer stopped early (broken pipe, Ctrl-C): drop the decodes nobody will read
            for _, future in pending:
                if future is not None:
                    future.cancel()


def _ready(entry) -> tuple[Item, np.ndarray | ImageError]:
    item, future = entry
    return (item, item) if future is None else (item, future.result())
