"""Learning curves (PNG); the confusion matrix and the other pictures shared with export are in edgeclf.figures."""

from __future__ import annotations

from pathlib import Path

from edgeclf.figures import pyplot, save

LEARNING_CURVES = "learning_curves.png"


def plot_learning_curves(history: list[dict], path: Path) -> Path:
    """Loss and accuracy per epoch (train and validation) over both phases, with the phase boundary marked."""
    plt = pyplot()
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
    return save(fig, path)
