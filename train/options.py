"""Every option of ``edgeclf train`` with its default, in one TensorFlow-free place (the CLI reads the defaults from
here, the run records them in edgeclf.json and in the checkpoint state that ``--resume`` reads back)."""

from __future__ import annotations

from dataclasses import dataclass, fields

VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
BASE_NAME = "MobileNetV2"  # the backbone, named in edgeclf.json and messages
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)  # the widths Keras publishes ImageNet weights for
ALPHA_RANGE = (ALPHAS[0], ALPHAS[-1])  # MobileNetV2 widths --alpha accepts with any --weights


@dataclass
class TrainOptions:
    """Every knob of a run; recorded in edgeclf.json (hyperparameters) and in the checkpoint state for --resume."""

    data: str = "cats_vs_dogs"
    data_url: str | None = None
    out: str | None = None
    alpha: float = 1.0
    image_size: int = 224
    weights: str = "imagenet"
    epochs: int = 100  # phase 1 maximum (early stopping ends it; epochs on cached features take a second)
    lr: float = 1e-3
    views: int = 2  # phase 1 feature views per training image: the image and its horizontal flip
    head_patience: int = 5
    fine_tune_at: int = 60  # chosen in the phase 2 study (benchmarks/results/recipe-study-*-2026-12-02)
    fine_tune_epochs: int = 15  # phase 2 maximum
    fine_tune_lr: float = 1e-4
    ema_half_life: float = 1.0  # phase 2: half-life in epochs of the weight average (recipe-study-*-2026-12-02-ema)
    batch_size: int = 32
    dropout: float = 0.2
    label_smoothing: float = 0.1
    augment: bool = True
    patience: int = 1  # phase 2; with the weight average, one flat epoch is a reliable stop (train record -ema)
    min_improvement: float = 0.0025  # phase 2: a smaller fractional gain in val loss counts against patience
    seed: int = 42
    val_fraction: float = VAL_FRACTION
    test_fraction: float = TEST_FRACTION
    cache: str = "auto"
    strict_data: bool = False  # refuse to train when duplicates leak across splits or carry two labels

    def ema_momentum(self, steps: int) -> float:
        """The per-step momentum whose average forgets half its weight in ``ema_half_life`` epochs of ``steps``
        steps, so the average spans the same share of training on a small dataset as on a large one (0 = off)."""
        if self.ema_half_life <= 0:
            return 0.0
        return 0.5 ** (1.0 / max(self.ema_half_life * steps, 1.0))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainOptions":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
