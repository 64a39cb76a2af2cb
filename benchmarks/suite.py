"""The edgeclf benchmark suite: one command from a run directory to a committed results file.

    flock /tmp/edgeclf-heavy.lock python -m benchmarks.suite RUN_DIR

1. exports every format (float32, float16, dynamic, int8) at each ``--sizes`` (default 160 and 224 px) with
   ``edgeclf export RUN_DIR --all --image-size N --out WORK/export-N`` (reused when already there);
2. benchmarks each model at each ``--threads`` (default 1 and 2) with ``edgeclf.runtime.bench`` — the code behind
   ``edgeclf bench`` — including accuracy on the run's recorded test split (splits.json);
3. reports the references measured in the same run, as ratios: runtime overhead (Classifier on a ready frame vs a
   bare interpreter ``invoke()`` loop), end-to-end JPEG vs invoke-only with the decode/resize/inference breakdown, and
   training (``edgeclf train``'s default recipe vs the Keras-tutorial baseline in benchmarks/baselines/);
4. writes ``benchmarks/results/<machine>-<date>.md``, ``.json`` and ``.png`` (accuracy vs p50 latency).

The Pi needs no TensorFlow for step 2: export on a workstation, copy the export folders, and run with ``--exports``
(see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from edgeclf.contracts import ALL_FORMATS, REPORT_FILE, SPLITS_FILE, model_filename
from edgeclf.errors import EdgeclfError, UsageError
from edgeclf.fsutil import atomic_path, atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BASELINE_SCRIPT = "benchmarks.baselines.keras_transfer_learning"


# ---- step 1: exports ---------------------------------------------------------------------------------------------


def export_models(run_dir: Path, size: int, out: Path, *, reuse: bool, log) -> dict[str, Path]:
    """model_<format>.tflite for every format at ``size`` px, exported by the real CLI (or reused)."""
    models = {f: out / model_filename(f) for f in ALL_FORMATS}
    if reuse and all(p.is_file() for p in models.values()):
        log(f"reusing the {size} px export in {out}")
        return models
    cmd = [sys.executable, "-m", "edgeclf", "export", str(run_dir), "--all", "--image-size", str(size),
           "--out", str(out)]
    if out.exists():
        cmd.append("--force")
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
    missing = [str(p) for p in models.values() if not p.is_file()]
    if missing:
        raise EdgeclfError(f"edgeclf export at {size} px did not produce {', '.join(missing)} "
                           f"(exit code {proc.returncode})", "run the export command above by hand to see why")
    if proc.returncode != 0:  # e.g. the accuracy gate failed for one format: models exist, the report says why
        log(f"note: edgeclf export exited with {proc.returncode} at {size} px (see {out / REPORT_FILE})")
    log(f"exported {size} px in {time.perf_counter() - t0:.0f} s")
    return models


def read_export_report(out: Path) -> dict | None:
    try:
        return json.loads((out / REPORT_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ---- step 2: benchmarks ------------------------------------------------------------------------------------------


def test_split(run_dir: Path) -> list[tuple[str, str]]:
    """(path, label) of the run's recorded test split: the images no model in this run ever trained on."""
    from edgeclf.manifest import load_splits

    splits = load_splits(run_dir)
    items = [(str(Path(splits.root) / e.path), e.label) for e in splits.files("test")]
    if not items:
        raise UsageError(f"{run_dir / SPLITS_FILE}: empty test split", "re-run edgeclf train")
    missing = [p for p, _ in items if not os.path.isfile(p)]
    if missing:
        raise UsageError(f"{len(missing)} of {len(items)} test images are missing (first: {missing[0]})",
                         "put the dataset back where the run recorded it")
    return items


def bench_size(models: dict[str, Path], items, threads, runs, warmup, quiet: bool) -> dict:
    from edgeclf.runtime.bench import BenchConfig, run_benchmark

    return run_benchmark([str(models[f]) for f in ALL_FORMATS], BenchConfig(threads=threads, runs=runs, warmup=warmup),
                         eval_items=items, quiet=quiet, images_note="test split (splits.json)")


# ---- step 3: training comparison ---------------------------------------------------------------------------------


def find_result(pattern: str) -> Path | None:
    """Newest results file matching ``pattern`` written today (UTC)."""
    today = dt.datetime.now(dt.timezone.utc).date()
    found = [Path(p) for p in glob.glob(str(RESULTS / pattern))
             if dt.datetime.fromtimestamp(os.path.getmtime(p), dt.timezone.utc).date() == today]
    return max(found, key=os.path.getmtime) if found else None


def _dig(data, *paths):
    """First value found along any of the dotted ``paths``."""
    for path in paths:
        node = data
        for key in path.split("."):
            if isinstance(node, dict) and key in node:
                node = node[key]
            else:
                node = None
                break
        if node is not None:
            return node
    return None


def edgeclf_training(run_dir: Path, record: Path | None) -> dict:
    """Test accuracy and wall time of ``edgeclf train``'s default recipe: from the train stage's results record when
    one from this machine and today exists, else from the run's manifest (which records the same timings)."""
    from edgeclf.manifest import load_manifest

    sources = [("manifest", load_manifest(run_dir).metrics, str(run_dir / "edgeclf.json"))]
    if record:
        sources.insert(0, ("record", json.loads(record.read_text()), str(record)))
    out = {"run_dir": str(run_dir), "hyperparameters": load_manifest(run_dir).hyperparameters}
    for _, data, source in reversed(sources):  # the record wins where both say something
        found = {
            "test_accuracy": _dig(data, "test.accuracy", "metrics.test.accuracy", "summary.test.accuracy"),
            "test_images": _dig(data, "test.count", "metrics.test.count", "summary.test.count"),
            "wall_time_s": _dig(data, "timings.total_s", "metrics.timings.total_s", "summary.timings.total_s"),
            "phase_times_s": _dig(data, "timings", "metrics.timings", "summary.timings"),
            "peak_rss_mb": _dig(data, "peak_rss_mb", "metrics.peak_rss_mb", "summary.peak_rss_mb"),
        }
        if any(v is not None for v in found.values()):
            out.update({k: v for k, v in found.items() if v is not None})
            out["source"] = source
    phases = out.get("phase_times_s") or {}
    if "phase1_s" in phases and "phase2_s" in phases:
        out["train_time_s"] = phases["phase1_s"] + phases["phase2_s"]
    return out


def baseline_training(record: Path | None, *, run: bool, data: Path, weights: Path, work: Path,
                      run_dir: Path, log) -> dict | None:
    """The Keras-tutorial baseline's wall time and test accuracy (run it with --run-baseline, else read its record),
    plus its accuracy on edgeclf's own test split for a like-for-like comparison."""
    if run:
        record = RESULTS / f"baseline-keras-tutorial-{_slug()}-{_today()}.json"
        cmd = [sys.executable, "-m", BASELINE_SCRIPT, "--data", str(data), "--weights", str(weights),
               "--image-size", "224", "--out", str(work / "keras-baseline"), "--result", str(record),
               "--splits", str(run_dir / SPLITS_FILE)]
        log("$ " + " ".join(cmd))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    if record is None or not record.is_file():
        return None
    data_ = json.loads(record.read_text())
    weights_file = Path(data_.get("weights_file") or work / "keras-baseline" / "baseline.weights.h5")
    fingerprint = json.loads((run_dir / SPLITS_FILE).read_text()).get("fingerprint")
    scored = data_.get("edgeclf_test_split") or {}
    if scored.get("fingerprint") != fingerprint:  # never scored, or scored on another run's split
        found = weights_file if weights_file.is_file() else None
        if found:
            log(f"scoring the baseline's weights ({found}) on edgeclf's test split")
            subprocess.run([sys.executable, "-m", BASELINE_SCRIPT, "--data", str(data), "--evaluate-only", str(found),
                            "--splits", str(run_dir / SPLITS_FILE), "--result", str(record)], check=True,
                           stdout=subprocess.DEVNULL)
            data_ = json.loads(record.read_text())
    return {"source": str(record), "test_accuracy": data_["test"]["accuracy"],
            "test_images": data_["test"].get("images_approx"),
            "edgeclf_test_split_accuracy": _dig(data_, "edgeclf_test_split.accuracy")
            if _dig(data_, "edgeclf_test_split.fingerprint") == fingerprint else None,
            "edgeclf_test_split_images": _dig(data_, "edgeclf_test_split.images"),
            "wall_time_s": data_["wall_time_s"]["total"], "train_time_s": data_["wall_time_s"]["train_total"],
            "phase_times_s": data_["wall_time_s"], "peak_rss_mb": data_.get("peak_rss_mb"),
            "image_size": data_["image_size"], "finished": data_.get("finished")}


# ---- step 4: report ----------------------------------------------------------------------------------------------


def _slug() -> str:
    from edgeclf.runtime.machine import machine_info, machine_slug

    return machine_slug(machine_info())


def _today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


def summary_rows(sizes: dict[int, dict]) -> list[dict]:
    """One row per (size, format): accuracy, agreement, size, latency per thread count, overhead, end to end."""
    rows = []
    for size, bench in sizes.items():
        acc = bench.get("accuracy", {}).get("per_model", {})
        by_model: dict[str, dict] = {}
        for r in bench["results"]:
            by_model.setdefault(r["model"], {})[r["threads"]] = r
        f32_size = next((r["size_bytes"] for r in bench["results"] if r["format"] == "float32"), None)
        for model, per_thread in by_model.items():
            first = next(iter(per_thread.values()))
            a = acc.get(model, {})
            rows.append({
                "size": size, "format": first["format"], "model": model, "size_bytes": first["size_bytes"],
                "size_ratio": first["size_bytes"] / f32_size if f32_size else None,
                "accuracy": a.get("accuracy"), "ci95": a.get("ci95"), "test_images": a.get("count"),
                "agreement_with_float32": a.get("agreement_with_first"),
                "threads": {t: {"p50": r["invoke"]["p50"], "p90": r["invoke"]["p90"], "mean": r["invoke"]["mean"],
                                "classifier_p50": r["classifier"]["p50"], "overhead_p50": r["overhead"]["p50"],
                                "overhead_paired": r["overhead"]["paired"],
                                "overhead_mean": r["overhead"]["mean"], "jpeg_p50": r["jpeg"]["p50"],
                                "frame_p50": r["frame"]["p50"], "throughput_ips": r["throughput_ips"],
                                "load_ms": r["load_ms"], "first_inference_ms": r["first_inference_ms"],
                                "peak_rss_mb": r["memory_mb"]["peak"], "breakdown_ms": r["breakdown_ms"],
                                "jpeg_vs_invoke_p50": r["jpeg_vs_invoke"]["p50"]}
                            for t, r in per_thread.items()},
            })
    return rows


def _f(v, spec=".2f", scale=1.0, empty="-"):
    return empty if v is None else format(v * scale, spec)


def render_markdown(report: dict) -> str:
    """The results .md: the header, then one section per question the suite answers, then a link to the JSON."""
    sections = [_md_header, _md_accuracy_and_latency, _md_overhead, _md_end_to_end, _md_training, _md_notes]
    return "\n".join(line for section in sections for line in section(report))


def _md_header(report: dict) -> list[str]:
    m = report["machine"]
    return [f"# edgeclf benchmark: {report['slug']}, {report['date']}", "",
            f"- Machine: {m.get('pi_model') or m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
            f"{_f(m.get('memory_mb'), '.0f')} MB RAM, {m['os']}, kernel {m['kernel']}",
            f"- Software: Python {m['python']}, {m['interpreter']}, numpy {m['versions']['numpy']}, "
            f"Pillow {m['versions']['Pillow']}",
            f"- CPU temperature: {_temp(m)} at start, {_temp(m.get('after_run', {}))} at the end; throttling: "
            f"{_throttle(m)} at start, {_throttle(m.get('after_run', {}))} at the end; load average (1/5/15 min) "
            f"{m.get('load_average')} at start, {m.get('after_run', {}).get('load_average')} at the end",
            f"- Run: `{report['run_dir']}` ({report['dataset']}); accuracy on its recorded test split "
            f"({report['test_images']} images, never trained on)",
            f"- Timings: {report['config']['runs']} timed runs after {report['config']['warmup']} warm-up, each "
            "model in a fresh process; latency = bare interpreter `invoke()` (what `benchmark_model` measures)",
            f"- Command: `{report['command']}`", ""]


def _md_accuracy_and_latency(report: dict) -> list[str]:
    from edgeclf.console import format_table

    threads = report["config"]["threads"]
    head = ["size", "format", "accuracy % (95% CI)", "agrees w/ float32 %", "file MB", "vs float32"]
    for t in threads:
        head += [f"p50 ms {t}T", f"p90 ms {t}T"]
    table = []
    for r in report["summary"]:
        lo, hi = r["ci95"] or (None, None)
        row = [r["size"], r["format"], f"{_f(r['accuracy'], '.2f', 100)} ({_f(lo, '.1f', 100)}-{_f(hi, '.1f', 100)})",
               _f(r["agreement_with_float32"], ".2f", 100), _f(r["size_bytes"] / 2**20, ".2f"),
               _f(r["size_ratio"], ".2f") + "x"]
        for t in threads:
            tt = r["threads"].get(t, {})
            row += [_f(tt.get("p50")), _f(tt.get("p90"))]
        table.append(row)
    lines = ["## Accuracy, size and latency per format", "",
             format_table(table, head, align="rl" + "r" * (len(head) - 2)), ""]
    if report.get("float_reference"):
        lines += ["Float Keras model on the same split (from the export report): " + ", ".join(
            f"{s} px: {_f(v, '.2f', 100)} %" for s, v in report["float_reference"].items()), ""]
    if report.get("plot"):
        lines += [f"![accuracy vs latency]({report['plot']})", ""]
    return lines


def _md_overhead(report: dict) -> list[str]:
    from edgeclf.console import format_table

    threads, config = report["config"]["threads"], report["config"]
    head = ["size", "format"]
    for t in threads:
        head += [f"{t}T invoke p50 ms", f"{t}T Classifier p50 ms", f"{t}T overhead (paired)"]
    table = []
    for r in report["summary"]:
        row = [r["size"], r["format"]]
        for t in threads:
            tt = r["threads"][t]
            row += [_f(tt["p50"]), _f(tt["classifier_p50"]), _f(tt.get("overhead_paired"), "+.1f", 100) + " %"]
        table.append(row)
    ov = report["overhead_summary"]
    return ["## Reference 1: runtime overhead (Classifier on a ready frame vs bare `invoke()`)", "",
            "Same model, same thread count, same interpreter class, measured interleaved in blocks of "
            f"{config['block']} calls. Target: under 5 %.", "",
            format_table(table, head, align="rl" + "r" * (3 * len(threads))), "",
            f"Overhead = median over the {config['runs'] // config['block']} block pairs of "
            "(Classifier block median / invoke block median) - 1. Median over all "
            f"{ov['n']} measurements: {_f(ov['median'], '+.2f', 100)} %; worst: {_f(ov['max'], '+.2f', 100)} % "
            f"({ov['worst']}). Per-thread-count medians: "
            + ", ".join(f"{t}T {_f(v, '+.2f', 100)} %" for t, v in ov.get("by_threads", {}).items()) + ".", ""]


def _md_end_to_end(report: dict) -> list[str]:
    from edgeclf.console import format_table

    t1 = report["config"]["threads"][0]
    head = ["size", "format", "decode", "resize", "inference", "sum", "measured e2e", "e2e p50 / invoke p50",
            "640x480 frame p50"]
    table = []
    for r in report["summary"]:
        tt = r["threads"][t1]
        b = tt["breakdown_ms"]
        table.append([r["size"], r["format"], _f(b["decode"]), _f(b["resize"]), _f(b["inference"]), _f(b["sum"]),
                      _f(b["jpeg_end_to_end"]), _f(tt["jpeg_vs_invoke_p50"], ".2f") + "x", _f(tt["frame_p50"])])
    jpegs = report["jpegs"]
    return ["## Reference 2: end to end from a JPEG vs invoke-only (1 thread)", "",
            f"JPEG files: {jpegs['files']} test images, mean {jpegs['mean_megapixels']} MP "
            f"({jpegs['mean_bytes'] // 1024} KB), read from the page cache. Breakdown in mean ms.", "",
            format_table(table, head, align="rl" + "r" * 7), ""]


def _md_training(report: dict) -> list[str]:
    from edgeclf.console import format_table

    lines = ["## Reference 3: training (edgeclf train default recipe vs the Keras tutorial baseline)", ""]
    tr = report.get("training") or {}
    e, b = tr.get("edgeclf"), tr.get("baseline")
    if not (e or b):
        return lines + ["(not measured in this run)", ""]
    head = ["recipe", "image size", "wall time (total)", "of which training epochs", "peak RSS MB",
            "test accuracy % (own split)", "accuracy % on edgeclf's test split", "source"]
    table = []
    if e:
        table.append(["edgeclf train (default recipe)", 224, _dur(e.get("wall_time_s")),
                      _dur(e.get("train_time_s")), _f(e.get("peak_rss_mb"), ".0f"),
                      f"{_f(e.get('test_accuracy'), '.2f', 100)} ({e.get('test_images') or '?'} images)",
                      _f(e.get("test_accuracy"), ".2f", 100), _rel(e.get("source"))])
    if b:
        table.append(["BASELINE: Keras transfer-learning tutorial", b["image_size"], _dur(b["wall_time_s"]),
                      _dur(b.get("train_time_s")), _f(b.get("peak_rss_mb"), ".0f"),
                      f"{_f(b['test_accuracy'], '.2f', 100)} (~{b.get('test_images')} images)",
                      _f(b.get("edgeclf_test_split_accuracy"), ".2f", 100)
                      + (f" ({b['edgeclf_test_split_images']} images)" if b.get("edgeclf_test_split_images")
                         else ""), _rel(b["source"])])
    lines += [format_table(table, head, align="lrrrrrrl"), ""]
    if e and b and e.get("wall_time_s") and b.get("wall_time_s"):
        lines += [f"Wall-time ratio edgeclf / baseline: {e['wall_time_s'] / b['wall_time_s']:.2f}x. "
                  "Baseline: benchmarks/baselines/keras_transfer_learning.py (10 frozen + 10 fine-tune epochs "
                  "from layer 100, augmentation in the model, test = 20 % of validation batches).", ""]
    return lines


def _md_notes(report: dict) -> list[str]:
    lines = ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""] if report.get("notes") else []
    return lines + ["## Raw data", "", f"Everything above, per model and thread count (load time, first inference, "
                    f"min/p99, throughput, peak RSS, machine record): [{report['json']}]({report['json']}).", ""]


def _rel(path):
    if not path:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _dur(seconds):
    if seconds is None:
        return "-"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def _temp(m):
    t = m.get("cpu_temperature")
    return f"{t['celsius']:.1f} °C ({t['source']})" if t else "not exposed"


def _throttle(m):
    t = m.get("throttling")
    if not t:
        return "not exposed (no vcgencmd)"
    return "none" if t["ok"] else f"{t['raw']} ({', '.join(t['now'] + t['since_boot'])})"


LABEL_OFFSETS = {"float32": (6, 5), "float16": (6, -11), "dynamic": (8, -3), "int8": (6, -11)}


def plot(rows: list[dict], threads: list[int], path: Path, title: str) -> None:
    """Accuracy vs p50 latency, one colour per format, one marker per input size; filled = first thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"float32": "#1f77b4", "float16": "#2ca02c", "dynamic": "#ff7f0e", "int8": "#d62728"}
    markers = ["o", "s", "^", "D"]
    sizes = sorted({r["size"] for r in rows})
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=120)
    for r in rows:
        marker = markers[sizes.index(r["size"]) % len(markers)]
        if r["accuracy"] is None:
            continue
        for i, t in enumerate(threads):
            tt = r["threads"].get(t)
            if not tt:
                continue
            ax.scatter(tt["p50"], 100 * r["accuracy"], s=60, marker=marker, color=colours.get(r["format"], "grey"),
                       facecolors=colours.get(r["format"], "grey") if i == 0 else "none", linewidths=1.5, zorder=3)
        xs = [r["threads"][t]["p50"] for t in threads if t in r["threads"]]
        ax.plot(xs, [100 * r["accuracy"]] * len(xs), color=colours.get(r["format"], "grey"), linewidth=0.8,
                alpha=0.5, zorder=2)
        ax.annotate(f"{r['format']} {r['size']}", (r["threads"][threads[0]]["p50"], 100 * r["accuracy"]),
                    textcoords="offset points", xytext=LABEL_OFFSETS.get(r["format"], (6, 4)), fontsize=7,
                    color=colours.get(r["format"], "grey"))
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=f) for f, c in colours.items()]
    handles += [Line2D([], [], marker=markers[i], linestyle="", color="black", markerfacecolor="none",
                       label=f"{s} px") for i, s in enumerate(sizes)]
    handles += [Line2D([], [], marker="o", linestyle="", color="black", label=f"{threads[0]} thread (filled)")]
    if len(threads) > 1:
        handles += [Line2D([], [], marker="o", linestyle="", color="black", markerfacecolor="none",
                           label=f"{threads[1]} threads (hollow)")]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    all_x = [tt["p50"] for r in rows for tt in r["threads"].values() if tt["p50"]]
    if all_x and max(all_x) / min(all_x) > 20:  # e.g. a slow dynamic-range model: keep the fast ones readable
        ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)  # room for the labels at the edges
    ax.set_xlabel("p50 latency per image, ms (interpreter invoke, batch 1)")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def overhead_summary(rows: list[dict]) -> dict:
    import numpy as np

    values = [(tt["overhead_paired"], f"{r['format']} {r['size']} px {t}T", t) for r in rows
              for t, tt in r["threads"].items() if tt.get("overhead_paired") is not None]
    if not values:
        return {"n": 0, "median": None, "max": None, "worst": None, "by_threads": {}}
    worst = max(values)
    by_threads = {t: float(np.median([v for v, _, tt in values if tt == t])) for t in sorted({v[2] for v in values})}
    return {"n": len(values), "median": float(np.median([v for v, _, _ in values])), "max": worst[0],
            "worst": worst[1], "by_threads": by_threads, "measure": "paired block ratio"}


# ---- main --------------------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive integers")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="an edgeclf run directory (edgeclf train --out ...)")
    p.add_argument("--sizes", type=_ints, default=[160, 224], help="export input sizes (default 160,224)")
    p.add_argument("--threads", type=_ints, default=[1, 2], help="thread counts (default 1,2)")
    p.add_argument("--runs", type=int, default=100, help="timed inferences per measurement (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up inferences (default 10)")
    p.add_argument("--work", type=Path, help="where exports go (default RUN_DIR/suite)")
    p.add_argument("--exports", action="store_true",
                   help="do not export: use WORK/export-<size>/model_*.tflite as they are (e.g. on a Pi)")
    p.add_argument("--re-export", action="store_true", help="export again even if WORK/export-<size> is complete")
    p.add_argument("--results", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    p.add_argument("--train-result", type=Path,
                   help="edgeclf train record to compare (default: newest benchmarks/results/train-*.json from "
                        "today, else RUN_DIR's manifest)")
    p.add_argument("--baseline-result", type=Path,
                   help="baseline record (default: newest benchmarks/results/baseline-keras-tutorial-*.json from today)")
    p.add_argument("--run-baseline", action="store_true", help="run the Keras-tutorial baseline now (~15-30 min)")
    p.add_argument("--no-training", action="store_true", help="skip the training comparison (e.g. on a Pi)")
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/cats_and_dogs_filtered")
    p.add_argument("--weights", type=Path, default=REPO.parent / "shared/weights/"
                   "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5")
    p.add_argument("--name", help="machine name for the results files (default: derived from the machine)")
    p.add_argument("--note", action="append", default=[], help="a line for the report's Notes section (repeatable)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        return _run(args, _command_line(argv if argv is not None else sys.argv[1:]))
    except EdgeclfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _command_line(argv: list[str]) -> str:
    """The command as typed, minus --note texts (they are in the Notes section already)."""
    import shlex

    shown, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif not a.startswith("--note="):
            shown.append(shlex.quote(str(a)))
    return " ".join(["python -m benchmarks.suite"] + shown)


def _run(args, command: str) -> int:
    from edgeclf.runtime.machine import machine_info, machine_slug

    def log(message):
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    run_dir = args.run_dir.resolve()
    if not (run_dir / SPLITS_FILE).is_file():
        raise UsageError(f"{run_dir}: not an edgeclf run directory (no {SPLITS_FILE})", "pass edgeclf train's --out")
    work = (args.work or run_dir / "suite").resolve()
    machine = machine_info()
    slug = args.name or machine_slug(machine)
    items = test_split(run_dir)
    log(f"machine {slug}; test split: {len(items)} images")

    sizes, reports = _bench_sizes(args, run_dir, work, items, log)
    training = None if args.no_training else _training(args, run_dir, work, slug, log)
    machine["interpreter"] = sizes[args.sizes[0]]["machine"]["interpreter"]
    end = machine_info()  # a Pi may heat up and throttle during the run: record the state after it too
    machine["after_run"] = {k: end[k] for k in ("cpu_temperature", "throttling", "load_average", "recorded")}
    report = _report(args, command, run_dir, items, machine, slug, sizes, reports, training)
    _write(report, args.results, log)
    print(render_markdown(report))
    return 0


def _bench_sizes(args, run_dir: Path, work: Path, items, log) -> tuple[dict, dict]:
    """Export (or find) every format at every size, read its export report, and benchmark it."""
    sizes, reports = {}, {}
    for size in args.sizes:
        out = work / f"export-{size}"
        if args.exports:
            models = {f: out / model_filename(f) for f in ALL_FORMATS}
            missing = [str(m) for m in models.values() if not m.is_file()]
            if missing:
                raise UsageError(f"--exports: missing {', '.join(missing)}", "copy the export folders first")
        else:
            models = export_models(run_dir, size, out, reuse=not args.re_export, log=log)
        reports[size] = read_export_report(out)
        log(f"benchmarking {size} px: {len(ALL_FORMATS)} formats x threads {args.threads}")
        sizes[size] = bench_size(models, items, args.threads, args.runs, args.warmup, args.quiet)
    return sizes, reports


def _training(args, run_dir: Path, work: Path, slug: str, log) -> dict:
    """edgeclf's training record against the Keras-tutorial baseline's (run now with --run-baseline)."""
    train_record = args.train_result or find_result("train-*.json")
    baseline_record = args.baseline_result or find_result(f"baseline-keras-tutorial-{slug}-*.json") \
        or find_result("baseline-keras-tutorial-*.json")
    return {"edgeclf": edgeclf_training(run_dir, train_record),
            "baseline": baseline_training(baseline_record, run=args.run_baseline, data=args.data,
                                          weights=args.weights, work=work, run_dir=run_dir, log=log)}


def _report(args, command: str, run_dir: Path, items, machine: dict, slug: str, sizes: dict, reports: dict,
            training: dict | None) -> dict:
    """The results JSON (the .md is rendered from it)."""
    rows = summary_rows(sizes)
    date = _today()
    stem = f"{slug}-{date}"
    first = sizes[args.sizes[0]]
    float_ref = {}
    for size, rep in reports.items():
        v = _dig(rep or {}, "reference.accuracy", "keras.accuracy", "float.accuracy")
        if v is not None:
            float_ref[size] = v
    return {
        "format": "edgeclf.suite/1", "slug": slug, "date": date, "command": command, "run_dir": str(run_dir),
        "dataset": _dataset_name(run_dir), "test_images": len(items), "machine": machine,
        "config": {"sizes": args.sizes, "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
                   "block": first["config"]["block"]},
        "jpegs": first["jpegs"], "summary": rows, "overhead_summary": overhead_summary(rows),
        "training": training, "float_reference": float_ref, "export_reports": reports,
        "bench": {str(s): b for s, b in sizes.items()},
        "json": f"{stem}.json", "plot": f"{stem}.png", "notes": list(args.note),
    }


def _write(report: dict, results: Path, log) -> None:
    """<slug>-<date>.json, .md and .png (no plot without matplotlib) in ``results``."""
    stem = Path(report["json"]).stem
    results.mkdir(parents=True, exist_ok=True)
    machine = report["machine"]
    try:
        plot(report["summary"], report["config"]["threads"], results / f"{stem}.png",
             f"{report['dataset']} on {machine.get('pi_model') or machine['cpu_model']} ({machine['cores']} cores)")
    except ImportError:
        report["plot"] = None
        log("note: matplotlib is not installed, so no plot (pip install matplotlib)")
    atomic_write_json(results / f"{stem}.json", report)
    atomic_write_text(results / f"{stem}.md", render_markdown(report))
    log(f"wrote {results / stem}.md, .json, .png")


def rerender(json_path: Path, notes: list[str]) -> None:
    """Add notes to a finished results JSON and rewrite its .md and plot (no re-measuring)."""
    report = json.loads(Path(json_path).read_text())
    report["notes"] = list(report.get("notes") or []) + list(notes)
    report["summary"] = [{**r, "threads": {int(t): v for t, v in r["threads"].items()}} for r in report["summary"]]
    atomic_write_json(json_path, report)
    atomic_write_text(Path(json_path).with_suffix(".md"), render_markdown(report))
    if report.get("plot"):
        m = report["machine"]
        plot(report["summary"], report["config"]["threads"], Path(json_path).with_name(report["plot"]),
             f"{report['dataset']} on {m.get('pi_model') or m['cpu_model']} ({m['cores']} cores)")


def _dataset_name(run_dir: Path) -> str:
    try:
        root = json.loads((run_dir / SPLITS_FILE).read_text()).get("root", "")
        return Path(root).name or "dataset"
    except (OSError, json.JSONDecodeError):
        return "dataset"


if __name__ == "__main__":
    sys.exit(main())
