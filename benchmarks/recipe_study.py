"""The study that chose ``edgeclf train``'s default recipe: recipe variant x dataset -> validation accuracy, wall time.

Defaults are chosen on VALIDATION accuracy only (test accuracy is reported once, for the chosen recipe, by the final
training records). Two parts:

* ``head``: phase 1 variants (views, learning rate, label smoothing, dropout) on cached pooled features: features of
  every train view and of validation are extracted once per dataset (the expensive part) and each variant then trains
  the head in seconds with early stopping (best weights restored);
* ``finetune``: a few full two-phase runs (``edgeclf.train.run.train``) that differ in phase 2 only.

Run (heavy; niced)::

    nice -n 5 python -m benchmarks.recipe_study head --work /tmp/study --result benchmarks/results/recipe-study-<machine>-<date>.json
    nice -n 5 python -m benchmarks.recipe_study finetune --work /tmp/study --result ...same file...
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = {"cats_and_dogs_filtered": SHARED / "data" / "cats_and_dogs_filtered",
            "clothing-dataset-small": SHARED / "data" / "clothing-dataset-small"}
WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
STUDY_VIEWS = 3
HEAD_GRID = {"views": (1, 2, 3), "lr": (1e-3, 3e-3), "label_smoothing": (0.0, 0.1), "dropout": (0.2, 0.5)}


def dataset_features(name: str, work: Path) -> dict:
    """Train features for STUDY_VIEWS views and validation features for one dataset (cached in ``work``)."""
    from edgeclf.train.data import prepare
    from edgeclf.train.dataset import discover
    from edgeclf.train.features import cached_features, view_names
    from edgeclf.train.model import build_model
    from edgeclf.train.options import TrainOptions

    opts = TrainOptions(data=str(DATASETS[name]), weights=str(WEIGHTS))
    data = prepare(discover(DATASETS[name]), opts, cache_dir=work / name, out_dir=work / name, quiet=True)
    model = build_model(len(data.class_names), weights=str(WEIGHTS))
    t0 = time.perf_counter()
    common = dict(cache_dir=work / name, key=f"{name}-224", seed=opts.seed)
    train, _ = cached_features(model, data.cache.pixels, data.rows("train"), view_names(STUDY_VIEWS), **common)
    val, _ = cached_features(model, data.cache.pixels, data.rows("validation"), ["image"], **common)
    return {"model": model, "data": data, "train": train, "val": val, "extract_s": time.perf_counter() - t0}


def head_variants(result: Path, work: Path) -> None:
    from edgeclf.train.fit import fit_head_only

    rows = []
    for name in DATASETS:
        d = dataset_features(name, work)
        data, n = d["data"], len(d["data"].rows("train"))
        y, yv = data.labels[data.rows("train")], data.labels[data.rows("validation")]
        print(f"{name}: features in {d['extract_s']:.0f} s", flush=True)
        for values in itertools.product(*HEAD_GRID.values()):
            v = dict(zip(HEAD_GRID, values))
            t0 = time.perf_counter()
            out = fit_head_only(d["train"][: v["views"] * n], y, d["val"], yv, lr=v["lr"],
                                label_smoothing=v["label_smoothing"], dropout=v["dropout"],
                                class_weight=data.class_weight(), seed=42)
            rows.append({"dataset": name, "part": "head", **v, **out, "seconds": round(time.perf_counter() - t0, 2)})
            print(json.dumps(rows[-1]), flush=True)
            save(result, rows)


def save(result: Path, rows: list[dict]) -> None:
    old = json.loads(result.read_text()) if result.exists() else {"rows": []}
    keep = [r for r in old["rows"] if (r["dataset"], r["part"]) not in {(x["dataset"], x["part"]) for x in rows}]
    result.write_text(json.dumps({**old, "rows": keep + rows}, indent=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["head", "finetune"])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part == "head":
        head_variants(args.result, args.work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
