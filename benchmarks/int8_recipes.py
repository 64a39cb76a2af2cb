"""int8 recipes side by side on real runs, for benchmarks/results/int8-recipes-*.{md,json}.

Per run directory, in one process on one machine:

1. One export that tries every int8 recipe (the gate set out of reach so the chain never stops) and keeps each
   file, plus float32 and int16x8: accuracy, drop, top-1 agreement with the float Keras model, size.
2. What default ``edgeclf export --int8`` ships: the first recipe, in the chain's order, whose numbers pass the
   default gate (conversion is deterministic, so these are the numbers the chain would see).
3. Latency of those files measured interleaved (blocks of ``BLOCK`` calls, model after model, repeated), so a noisy
   neighbour slows all alike; ``ratio`` is the median over rounds of (recipe block median / full-int8 block median).
4. The same files in tflite-runtime 2.14 and MediaPipe Tasks (the test suite's venvs): top-1 agreement with
   edgeclf's runtime, and with the float model as those consumers see it.

Usage (from the repository root; the venvs come from ``pytest tests/test_export_compat.py
tests/test_mediapipe_export.py``)::

    python -m benchmarks.int8_recipes RUN_DIR [RUN_DIR ...] --work DIR --result benchmarks/results/NAME
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeclf.runtime.classifier import Classifier

from benchmarks.consumers import VENVS, _subprocess_json, test_images

BLOCK, ROUNDS = 10, 12


def export_every(run_dir: Path, work: Path) -> dict:
    """The report of an export that tried (and kept) every int8 recipe, plus float32 and int16x8."""
    from edgeclf.export.run import ExportOptions, export_run

    # min_agreement above 100 % fails every recipe, so the chain tries them all; keep_attempts keeps their files
    return export_run(ExportOptions(run_dir=str(run_dir), formats=("float32", "int8", "int16x8"), out=str(work),
                                    force=True, keep_attempts=True, min_agreement=101.0), quiet=True)


def default_choice(attempts: list[dict], reference: dict) -> dict:
    """The attempt default ``--int8`` ships: the export's own gate and shipping rule
    (:func:`~edgeclf.export.report.gate_failures`, :func:`~edgeclf.export.int8.first_passing`) at the default
    options, applied to the measured attempts (conversion is deterministic)."""
    from edgeclf.export.int8 import first_passing
    from edgeclf.export.recipes import FALLBACK_ORDER, RECIPES
    from edgeclf.export.report import gate_failures
    from edgeclf.export.run import ExportOptions

    defaults, measured = ExportOptions(run_dir=""), {a["recipe"]: a for a in attempts}

    def validate(recipe) -> dict:
        row = {**measured[recipe.name], "top1_changes": measured[recipe.name].get("top1_changes") or []}
        return {**row, "gate_failures": gate_failures(row, reference, defaults)}

    row = first_passing([RECIPES[n] for n in FALLBACK_ORDER if n in measured], validate,
                        target=defaults.int8_target / 100, quiet=True)
    return {"recipe": row["recipe"], "status": "failed" if row["gate_failures"] else "passed",
            "tried": [a["recipe"] for a in row["attempts"]]}


def models_of(report: dict, folder: Path) -> dict[str, dict]:
    """name -> {"path", "accuracy", "agreement", "drop_points", "size_bytes", "top1_changes"} for every file."""
    found = {}
    for row in report["models"]:
        if row["format"] == "int8":
            for a in row["attempts"]:
                found[a["recipe"]] = {**a, "path": folder / a["file"]}
        else:
            found[row["format"]] = {key: row[key] for key in ("accuracy", "agreement", "drop_points", "size_bytes",
                                                               "top1_changes")} | {"path": folder / row["file"]}
    return found


def interleaved_latency(paths: dict[str, Path], images: np.ndarray, base: str = "full-int8") -> dict:
    """Median ms per model and its paired ratio to ``base``, timed in interleaved blocks on the same images."""
    classifiers = {name: Classifier(path) for name, path in paths.items()}
    for clf in classifiers.values():
        clf.probabilities_from_input(images[0])  # warm-up (XNNPACK packs weights on first invoke)
    blocks: dict[str, list[float]] = {name: [] for name in classifiers}
    for r in range(ROUNDS):
        batch = images[(r * BLOCK) % len(images):][:BLOCK]
        for name, clf in classifiers.items():
            times = []
            for x in batch:
                start = time.perf_counter()
                clf.probabilities_from_input(x)
                times.append(time.perf_counter() - start)
            blocks[name].append(float(np.median(times)) * 1000)
    return {name: {"p50_ms": round(float(np.median(b)), 3), "threads": classifiers[name].num_threads,
                   f"ratio_to_{base}": round(float(np.median(np.array(b) / np.array(blocks[base]))), 3)}
            for name, b in blocks.items()}


def consumers(path: Path, images: np.ndarray, arrays: Path, reference_top1: np.ndarray) -> dict:
    """tflite-runtime 2.14 (XNNPACK and builtin kernels) and MediaPipe Tasks: top-1 agreement with edgeclf's
    runtime on the same file, and with the float model."""
    from tests.test_export_compat import SCRIPT as TFLITE_SCRIPT
    from tests.test_mediapipe_export import SCRIPT as MEDIAPIPE_SCRIPT

    clf = Classifier(path)
    ours = np.array([int(np.argmax(clf.probabilities_from_input(x))) for x in images])
    old = _subprocess_json(VENVS / "tflite214" / "bin" / "python", TFLITE_SCRIPT, path, arrays)
    found = {"tflite-runtime " + old["version"] + (" " + key.lower()): np.argmax(old[key], 1)
             for key in ("AUTO", "BUILTIN_WITHOUT_DEFAULT_DELEGATES")}
    if clf.input_dtype != np.int8:  # MediaPipe takes uint8/float32 inputs only
        mp = _subprocess_json(VENVS / "mediapipe" / "bin" / "python", MEDIAPIPE_SCRIPT, path, arrays)
        found["mediapipe " + mp["version"]] = np.array([clf.labels.index(label) for label in mp["top1"]])
    return {name: {"agreement_with_edgeclf": round(float(np.mean(top1 == ours)), 4),
                   "agreement_with_float": round(float(np.mean(top1 == reference_top1)), 4)}
            for name, top1 in found.items()}


def changed(model: dict, images: int) -> int:
    """Test images whose top-1 differs from float: listed for shipped files, implied by agreement for attempts."""
    listed = model.get("top1_changes")
    return len(listed) if listed is not None else round((1 - model["agreement"]) * images)


def float_top1(model: dict, labels: list[str], paths: list[str], images: np.ndarray) -> np.ndarray:
    """The float Keras model's top-1 per test image, rebuilt from one model's answers and its listed changes."""
    clf = Classifier(model["path"])
    top1 = np.array([int(np.argmax(clf.probabilities_from_input(x))) for x in images])
    index = {p: i for i, p in enumerate(paths)}
    for change in model["top1_changes"]:
        top1[index[change["path"]]] = labels.index(change["reference"])
    return top1


def study(run_dir: Path, work: Path, reuse: bool = False) -> dict:
    from edgeclf.manifest import load_splits

    report = work / "report.json"
    every = json.loads(report.read_text()) if reuse and report.exists() else export_every(run_dir, work)
    models = models_of(every, work)
    size = Classifier(models["float32"]["path"]).input_size
    images = test_images(run_dir, size)
    splits = load_splits(run_dir)
    paths = [e.path for e in splits.files("test")]
    labels = list(every["reference"]["per_class"])
    reference_top1 = float_top1(models["float32"], labels, paths, images)
    latency = interleaved_latency({name: m["path"] for name, m in models.items()}, images)
    with tempfile.TemporaryDirectory() as tmp:
        arrays = Path(tmp) / "images.npy"
        np.save(arrays, images)
        seen = {name: consumers(m["path"], images, arrays, reference_top1) for name, m in models.items()
                if name != "float32"}
    return {"run_dir": str(run_dir), "test_images": len(images), "reference": every["reference"]["accuracy"],
            "default": default_choice(next(m for m in every["models"] if m["format"] == "int8")["attempts"],
                                      every["reference"]),
            "models": {name: {**{k: v for k, v in m.items() if k not in ("path", "top1_changes")},
                              "top1_changes": changed(m, len(images)),
                              "size_ratio_to_float32": round(m["size_bytes"] / models["float32"]["size_bytes"], 4),
                              "latency": latency[name], "consumers": seen.get(name)}
                       for name, m in models.items()},
            "quantization_debugger": every["quantization_debugger"], "machine": every["machine"]}


def markdown(results: list[dict]) -> str:
    lines = ["# int8 recipes side by side", ""]
    for r in results:
        d = r["default"]
        lines += [f"## `{r['run_dir']}` ({r['test_images']} test images, float {r['reference'] * 100:.2f} %)", "",
                  f"Default `edgeclf export --int8` ships **{d['recipe']}** ({d['status']}; tries "
                  f"{', '.join(d['tried'])}).", "",
                  "| model | accuracy | drop (pt) | agreement | changed | size vs float32 | p50 ms | vs full-int8 |"
                  " consumers: agreement with edgeclf / with float |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, m in r["models"].items():
            seen = "; ".join(f"{k} {v['agreement_with_edgeclf'] * 100:.1f} / {v['agreement_with_float'] * 100:.1f} %"
                             for k, v in (m["consumers"] or {}).items()) or "-"
            lines.append(f"| {name} | {m['accuracy'] * 100:.2f} % | {m['drop_points']:+.2f} | "
                         f"{m['agreement'] * 100:.2f} % | {m['top1_changes']} | "
                         f"{m['size_ratio_to_float32'] * 100:.1f} % | {m['latency']['p50_ms']:.2f} | "
                         f"{m['latency']['ratio_to_full-int8']:.2f}x | {seen} |")
        worst = r["quantization_debugger"]["worst"][:5]
        lines += ["", "Worst layers (QuantizationDebugger, RMSE/scale): "
                  + ", ".join(f"`{w['tensor']}` {w['op']} {w['rmse_over_scale']:.2f}" for w in worst), ""]
    return "\n".join(lines) + "\n"


def study_parser(doc: str) -> argparse.ArgumentParser:
    """The command line every per-run int8 study shares: run dirs, a work folder, a results path."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True, help="results path without extension")
    return parser


def study_runs(runs: list[Path], work: Path, result: Path, study_one, render) -> None:
    """``study_one(run, work / run.name)`` per run dir, RESULT.json/.md rewritten after each (a crash keeps the
    runs already done), then the Markdown printed. Runs already in RESULT.json from an earlier invocation are kept,
    unless studied again, so the runs of one study can be measured one at a time."""
    path = result.with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else []
    for run in runs:
        print(f"studying {run} ...", file=sys.stderr, flush=True)
        results = [r for r in results if r.get("run_dir") != str(run)] + [study_one(run, work / run.name)]
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        result.with_suffix(".md").write_text(render(results))
    print(render(results))


def main(argv=None) -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--reuse", action="store_true", help="reuse an export already in --work (its report.json)")
    args = parser.parse_args(argv)
    study_runs(args.runs, args.work, args.result, lambda run, work: study(run, work, args.reuse), markdown)

if __name__ == "__main__":
    main()
