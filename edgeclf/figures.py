"""The pictures people look at instead of reading numbers: confusion matrix, reliability diagram, image galleries.

Shared by train (run directory) and export (beside report.md); matplotlib with the Agg backend, imported only when a
picture is drawn (it comes with the ``train`` extra, like everything that draws). Every PNG is written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeclf.fsutil import atomic_path

CONFUSION_MATRIX = "confusion_matrix.png"
RELIABILITY = "reliability.png"
GALLERY_LIMIT = 48  # the worst this-many images; a gallery of hundreds is not looked at
GALLERY_COLUMNS = 8


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 100) -> Path:
    plt = pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def plot_confusion(confusion, labels: Sequence[str], path: Path, title: str = "test split") -> Path:
    """The confusion matrix PNG (see :func:`confusion_figure`); finer pixels for many classes."""
    return save(confusion_figure(confusion, labels, title), path, dpi=100 if len(labels) <= 12 else 140)


def confusion_figure(confusion, labels: Sequence[str], title: str = "test split"):
    """Rows are true classes, coloured by the share of the row (so a class with 12 images reads like one with
    800), each cell showing its count. Cell and font sizes follow the number of classes: readable at 2 to 40."""
    plt = pyplot()
    counts = np.asarray(confusion, dtype=np.int64)
    k = len(labels)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, float), where=rows > 0)
    cell = 0.6 if k <= 12 else 0.4 if k <= 25 else 0.3
    font = 9 if k <= 12 else 7 if k <= 25 else 5.5
    longest = max((len(label) for label in labels), default=1)
    margin = 0.9 + 0.075 * min(longest, 30)
    fig, ax = plt.subplots(figsize=(margin + 1.6 + cell * k, margin + 0.9 + cell * k))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), [_clip(x) for x in labels], rotation=90 if k > 8 else 45, ha="center" if k > 8 else
                  "right", fontsize=font)
    ax.set_yticks(range(k), [f"{_clip(x)} ({int(n)})" for x, n in zip(labels, rows[:, 0])], fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (images)")
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=font,
                color="white" if share[i, j] > 0.55 else "black")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class")
    ax.set_title(f"confusion matrix ({title}), row-normalised", fontsize=10)
    fig.tight_layout()
    return fig


def plot_reliability(curves: dict[str, tuple[list[dict], float | None]], path: Path,
                     title: str = "test split") -> Path:
    """Reliability diagram: per confidence bin, accuracy against mean confidence (the diagonal is perfect), one
    line per model (name -> (bins from ``metrics.reliability_bins``, ECE)); image counts per bin below."""
    plt = pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    width = 1 / max(len(next(iter(curves.values()))[0]), 1) if curves else 0.1
    for n, (name, (bins, ece)) in enumerate(curves.items()):
        filled = [b for b in bins if b["count"]]
        ece_text = "" if ece is None else f" (ECE {ece:.3f})"
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], "-o", markersize=4,
                label=f"{name}{ece_text}")
        offset = (n - (len(curves) - 1) / 2) * width / max(len(curves), 1)
        hist.bar([(b["lo"] + b["hi"]) / 2 + offset for b in bins], [b["count"] for b in bins],
                 width=width / max(len(curves), 1), label=name)
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"reliability ({title})", fontsize=10)
    hist.set_xlabel("confidence of the top class")
    hist.set_ylabel("images")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


@dataclass
class Tile:
    """One gallery thumbnail: uint8 RGB pixels and up to three caption lines (the first one in red)."""

    pixels: np.ndarray
    lines: tuple[str, ...]


def plot_gallery(tiles: Sequence[Tile], path: Path, title: str, *, total: int | None = None) -> Path:
    """A grid of thumbnails with captions, at most GALLERY_LIMIT of them (``total`` says how many there were)."""
    plt = pyplot()
    shown = list(tiles)[:GALLERY_LIMIT]
    cols = min(GALLERY_COLUMNS, max(len(shown), 1))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.35 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, tile in zip(axes.ravel(), shown):
        ax.imshow(tile.pixels)
        ax.set_title("\n".join(_clip(line, 24) for line in tile.lines), fontsize=7, color="black", loc="left")
    total = len(tiles) if total is None else total
    more = f" (worst {len(shown)} of {total})" if total > len(shown) else f" ({total})"
    fig.suptitle(title + more, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mistake_tiles(probabilities: np.ndarray, truth, labels: Sequence[str], images: np.ndarray,
                  paths: Sequence[str]) -> list[Tile]:
    """The wrongly classified images, the most confidently wrong first: predicted label and score, true label."""
    probabilities, truth = np.asarray(probabilities), np.asarray(truth, dtype=np.int64)
    predicted, score = probabilities.argmax(axis=1), probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != truth)
    order = wrong[np.argsort(-score[wrong], kind="stable")]
    return [Tile(images[i], (f"pred: {labels[predicted[i]]} {score[i]:.2f}", f"true: {labels[truth[i]]}",
                             Path(paths[i]).name)) for i in order]


def flip_tiles(reference: np.ndarray, probabilities: np.ndarray, truth, labels: Sequence[str], images: np.ndarray,
               paths: Sequence[str]) -> list[Tile]:
    """Images whose top-1 differs between the float ``reference`` and a quantized model, the largest score change
    first: what each model said, and the true label."""
    reference, probabilities = np.asarray(reference), np.asarray(probabilities)
    before, after = reference.argmax(axis=1), probabilities.argmax(axis=1)
    flipped = np.flatnonzero(before != after)
    rows = np.arange(len(reference))
    change = np.abs(reference[rows, before] - probabilities[rows, before])
    order = flipped[np.argsort(-change[flipped], kind="stable")]
    return [Tile(images[i], (f"quantized: {labels[after[i]]} {probabilities[i, after[i]]:.2f}",
                             f"float: {labels[before[i]]} {reference[i, before[i]]:.2f}",
                             f"true: {labels[int(truth[i])]}")) for i in order]
