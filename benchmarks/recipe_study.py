"""The study that chose ``edgeclf train``'s default recipe: recipe variant x dataset -> validation accuracy, wall time.

Defaults are chosen on VALIDATION accuracy only (test accuracy is reported once, for the chosen recipe, by the final
training records). Parts:

* ``head``: phase 1 variants (views, learning rate, label smoothing, dropout) on cached pooled features: features of
  every train view and of validation are extracted once per dataset (the expensive part) and each variant then trains
  the head in seconds with early stopping (best weights restored);
* ``report``: the Markdown table beside the JSON.

Run (heavy; niced)::

    nice -n 5 python -m benchmarks.recipe_study head --work /tmp/study \\
        --result benchmarks/results/recipe-study-<machine>-<date>.json
    python -m benchmarks.recipe_study report --work /tmp/study --result ...same file... --note "..."
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = {"cats_and_dogs_filtered": SHARED / "data" / "cats_and_dogs_filtered",
            "clothing-dataset-small": SHARED / "data" / "clothing-dataset-small"}
WEIGHTS = SHARED / "weights" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
# Views measured per dataset (zoom crops cost a forward pass each; on this 2-core machine they were measured on
# cats-vs-dogs only). Learning rate and dropout are explored at one view; views and label smoothing at the default
# learning rate and dropout.
STUDY_VIEWS = {"cats_and_dogs_filtered": 3, "clothing-dataset-small": 2}
BASE = {"lr": 1e-3, "label_smoothing": 0.0, "dropout": 0.2}


def head_grid(views: int) -> list[dict]:
    grid = [{"views": 1, **BASE, "lr": lr, "dropout": d} for lr in (1e-3, 3e-3) for d in (0.2, 0.5)]
    grid += [{"views": v, **BASE, "label_smoothing": ls} for v in range(1, views + 1) for ls in (0.0, 0.1)]
    unique = []
    for g in grid:
        if g not in unique:
            unique.append(g)
    return unique


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
    train, _ = cached_features(model, data.cache.pixels, data.rows("train"), view_names(STUDY_VIEWS[name]),
                               **common)
    val, _ = cached_features(model, data.cache.pixels, data.rows("validation"), ["image"], **common)
    return {"model": model, "data": data, "train": train, "val": val, "extract_s": time.perf_counter() - t0}


def head_variants(result: Path, work: Path) -> None:
    from edgeclf.train.fit import fit_head_only

    rows = load(result)
    for name in DATASETS:
        todo = [v for v in head_grid(STUDY_VIEWS[name]) if not any(_same(r, name, v) for r in rows)]
        if not todo:
            continue
        d = dataset_features(name, work)
        data, n = d["data"], len(d["data"].rows("train"))
        y, yv = data.labels[data.rows("train")], data.labels[data.rows("validation")]
        print(f"{name}: features in {d['extract_s']:.0f} s", flush=True)
        for v in todo:
            t0 = time.perf_counter()
            out = fit_head_only(d["train"][: v["views"] * n], y, d["val"], yv, lr=v["lr"],
                                label_smoothing=v["label_smoothing"], dropout=v["dropout"],
                                class_weight=data.class_weight(), seed=42)
            rows.append({"dataset": name, "part": "head", **v, **out, "seconds": round(time.perf_counter() - t0, 2)})
            print(json.dumps(rows[-1]), flush=True)
            result.write_text(json.dumps({"rows": rows}, indent=1))


def _same(row: dict, name: str, variant: dict) -> bool:
    return row["dataset"] == name and row["part"] == "head" and all(row[k] == v for k, v in variant.items())


def load(result: Path) -> list[dict]:
    return json.loads(result.read_text())["rows"] if result.exists() else []


def render(result: Path, notes: list[str]) -> Path:
    """The study as Markdown beside its JSON: one table per part, recipe variant x dataset."""
    rows = load(result)
    lines = [f"# Recipe study: {result.stem}", "", *notes, "",
             "## Phase 1 on cached features (validation accuracy at the best epoch; chosen on validation only)", "",
             "| dataset | views | lr | label smoothing | dropout | epochs run | best epoch | val loss | val accuracy "
             "| wall time (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted((r for r in rows if r["part"] == "head"), key=lambda r: (r["dataset"], r["views"], r["lr"],
                                                                             r["label_smoothing"], r["dropout"])):
        lines.append(f"| {r['dataset']} | {r['views']} | {r['lr']:g} | {r['label_smoothing']:g} | {r['dropout']:g} "
                     f"| {r['epochs']} | {r['best_epoch']} | {r['val_loss']:.4f} | {r['val_accuracy']:.2%} "
                     f"| {r['seconds']:.0f} |")
    md = result.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    return md


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", choices=["head", "report"])
    p.add_argument("--note", action="append", default=[], help="a line for the report's preamble")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    args = p.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part == "head":
        head_variants(args.result, args.work)
    else:
        print(render(args.result, args.note))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
