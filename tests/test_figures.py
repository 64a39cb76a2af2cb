"""The PNGs people look at: the confusion matrix stays readable from 2 to 40 classes (labels never overlap, counts in
the cells), the reliability diagram and the galleries are valid PNGs with what they promise, worst first."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeclf import figures


def _boxes_overlap(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: (b.x0, b.y0))
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


@pytest.mark.parametrize("k", [2, 10, 25, 40])
def test_confusion_matrix_labels_never_overlap_and_cells_show_counts(k):
    rng = np.random.default_rng(k)
    labels = [f"class-{i:02d}-{'long-name' * (i % 3)}" for i in range(k)]
    confusion = rng.integers(0, 5, (k, k)) + np.diag(rng.integers(5, 800, k))  # very unequal rows
    fig = figures.confusion_figure(confusion.tolist(), labels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert len(ticks) == k
        assert not _boxes_overlap([t.get_window_extent(renderer) for t in ticks])
    texts = {t.get_text() for t in ax.texts}
    assert {str(v) for v in confusion[confusion > 0]} <= texts  # every non-zero count is written in its cell
    image = ax.get_images()[0].get_array()
    assert np.allclose(image.sum(axis=1), 1.0)  # colours are row shares, not raw counts
    assert ax.get_yticklabels()[0].get_text().endswith(f"({confusion[0].sum()})")  # row totals beside the labels
    figures.pyplot().close(fig)


def test_reliability_and_gallery_are_valid_pngs(tmp_path):
    bins = [{"lo": i / 15, "hi": (i + 1) / 15, "count": i, "confidence": (i + 0.5) / 15 if i else None,
             "accuracy": min(1.0, (i + 0.2) / 15) if i else None} for i in range(15)]
    path = figures.plot_reliability({"before": (bins, 0.12), "after": (bins, 0.03)}, tmp_path / "rel.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= 400
    tiles = [figures.Tile(np.full((64, 64, 3), i * 4, np.uint8), (f"pred {i}", "true x")) for i in range(60)]
    path = figures.plot_gallery(tiles, tmp_path / "gallery.png", "mistakes")
    with Image.open(path) as img:
        assert img.format == "PNG"
        cols, rows = figures.GALLERY_COLUMNS, figures.GALLERY_LIMIT // figures.GALLERY_COLUMNS
        assert img.size[0] >= cols * 150 and img.size[1] >= rows * 150  # capped at GALLERY_LIMIT tiles


def test_mistake_and_flip_tiles_are_ordered_worst_first():
    labels = ["a", "b", "c"]
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    truth = np.array([1, 1, 0, 2])  # wrong: 0 (0.9), 2 (0.6), 3 (0.5); right: 1
    images = np.zeros((4, 8, 8, 3), np.uint8)
    tiles = figures.mistake_tiles(probs, truth, labels, images, ["p0", "p1", "p2", "p3"])
    assert [t.lines for t in tiles] == [("pred: a 0.90", "true: b", "p0"), ("pred: c 0.60", "true: a", "p2"),
                                        ("pred: a 0.50", "true: c", "p3")]
    quantized = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.3, 0.6], [0.45, 0.5, 0.05]])
    flips = figures.flip_tiles(probs, quantized, truth, labels, images, ["p0", "p1", "p2", "p3"])
    # image 1 lost 0.4 of its float top score, image 3 only 0.05
    assert [t.lines[0] for t in flips] == ["quantized: a 0.60", "quantized: b 0.50"]
