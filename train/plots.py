"""The two pictures a user looks at after training: learning curves and the test confusion matrix (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path

from edgeclf.fsutil import atomic_path

LEARNING_CURVES = "learning_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch (train and validation) over both phases, with the phase boundary marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    x = list(range(1, len(history) + 1))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            ys = [h.get(prefix + metric) for h in history]
            if any(y is not None for y in ys):
                ax.plot(x, ys, style, label=("validation " if prefix else "train ") + metric, markersize=3)
        boundary = next((i for i, h in enumerate(history) if h["phase"] == 2), None)
        if boundary:
            ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(boundary + 0.6, ax.get_ylim()[1], "fine-tune", va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def plot_confusion(confusion: list[list[int]], labels: list[str], path: Path, title: str = "test split") -> Path:
    plt = _pyplot()
    k = len(labels)
    fig, ax = plt.subplots(figsize=(2 + 0.6 * k, 1.6 + 0.6 * k))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(row) for row in confusion) if confusion else 0
    for i in range(k):
        for j in range(k):
            v = confusion[i][j]
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black", fontsize=9)
    ax.set_title(f"confusion matrix ({title})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
