"""The export report: report.json (for scripts and the bench suite), report.md and the stderr table (for people),
and the gate decision.

A model fails the gate when its accuracy drop against the float Keras reference exceeds ``--max-drop`` points.
The failing file stays on disk (someone may want to inspect it) and is marked ``"status": "failed"``.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgeclf.console import format_table
from edgeclf.fsutil import atomic_write_json, atomic_write_text

JSON_NAME = "report.json"
MD_NAME = "report.md"
REPORT_FORMAT = "edgeclf.export-report/1"


def build(*, opts, out: Path, run_dir: Path, size, trained_size, test, reference: dict, rows: list[dict],
          calibration, seconds: float, options: dict) -> dict:
    float32 = next((r for r in rows if r["format"] == "float32"), None)
    failures = []
    for row in rows:
        if float32 is not None:
            row["size_ratio"] = round(row["size_bytes"] / float32["size_bytes"], 4)
            row["size_ratio_to"] = "float32"
        else:  # model.keras holds optimizer state too; the float32 weights are the fair denominator
            row["size_ratio"] = round(row["size_bytes"] / reference["float32_weight_bytes"], 4)
            row["size_ratio_to"] = "float32 weights"
        row["status"] = "failed" if row["drop_points"] > opts.max_drop else "passed"
        if row["status"] == "failed":
            failures.append(f"{row['file']} ({row['format']}): accuracy {row['accuracy'] * 100:.2f} % is "
                            f"{row['drop_points']:.2f} points below float {reference['accuracy'] * 100:.2f} % "
                            f"(--max-drop {opts.max_drop:g})")
    from edgeclf.runtime.machine import machine_info

    return {
        "format": REPORT_FORMAT,
        "status": "failed" if failures else "passed",
        "failures": failures,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_dir": str(run_dir.resolve()),
        "out": str(out.resolve()),
        "input_size": list(size),
        "trained_input_size": list(trained_size),
        "max_drop": opts.max_drop,
        "test_split": {"entries": test.total, "evaluated": len(test.paths), "missing": test.missing,
                       "changed": test.changed, "unreadable": test.unreadable, "allow_changed": opts.allow_changed},
        "calibration": None if calibration is None else {
            "split": "train", "requested": opts.calibration_samples, "used": len(calibration.paths),
            "paths": calibration.paths, "skipped": calibration.skipped},
        "reference": reference,
        "models": rows,
        "seconds": round(seconds, 1),
        "options": options,
        "machine": machine_info(rows[0]["backend"] if rows else None),
    }


def gate_message(report: dict) -> str | None:
    """The one-line error for a failed gate, naming each failing format and its numbers; None when it passed."""
    if report["status"] != "failed":
        return None
    return "validation gate failed: " + "; ".join(report["failures"])


def table(report: dict) -> str:
    ref = report["reference"]
    rows = [["keras (float ref)", "-", _pct(ref["accuracy"]), _ci(ref["ci95"]), "-", "-", _mb(ref["size_bytes"]),
             "-", "-", "-"]]
    for r in report["models"]:
        rows.append([r["file"], r["io"], _pct(r["accuracy"]), _ci(r["ci95"]), f"{r['drop_points']:+.2f}",
                     _pct(r["agreement"]), _mb(r["size_bytes"]), f"{r['size_ratio'] * 100:.1f} %",
                     f"{r['latency_p50_ms']:.2f}", r["status"]])
    ratio_to = report["models"][0]["size_ratio_to"] if report["models"] else "float32"
    return format_table(rows, ["model", "io", "accuracy", "95 % CI", "drop (pt)", "agreement", "size",
                               f"size vs {ratio_to}", "p50 ms", "gate"], align="llrrrrrrrl")


def markdown(report: dict) -> str:
    t = report["test_split"]
    w, h = report["input_size"]
    lines = [
        f"# edgeclf export report — {report['status'].upper()}",
        "",
        f"- run: `{report['run_dir']}`",
        f"- input: {w}x{h} RGB (trained at {report['trained_input_size'][0]}x{report['trained_input_size'][1]})",
        f"- test split: {t['evaluated']} of {t['entries']} images from splits.json "
        f"(missing {len(t['missing'])}, changed {len(t['changed'])}, unreadable {len(t['unreadable'])})",
        f"- gate: accuracy drop vs the float Keras model ≤ {report['max_drop']:.2f} points",
        f"- machine: {report['machine'].get('cpu_model')} ({report['machine'].get('arch')}, "
        f"{report['machine'].get('usable_cores')} usable cores), interpreter {report['machine'].get('interpreter')}",
        f"- created {report['created']} in {report['seconds']} s",
    ]
    cal = report["calibration"]
    if cal:
        lines.append(f"- int8 calibration: {cal['used']} images, stratified sample of the training split "
                     f"(requested {cal['requested']}, skipped {len(cal['skipped'])})")
    lines += ["", table(report), "", "Latency: p50 of single-image `Classifier.probabilities_from_input` calls over "
              "the test split on this machine (decoding excluded).", "", "## Per-class accuracy", ""]
    labels = list(report["reference"]["per_class"])
    rows = [["keras (float ref)"] + [_pct(report["reference"]["per_class"][k]["accuracy"]) for k in labels]]
    rows += [[r["file"]] + [_pct(r["per_class"][k]["accuracy"]) for k in labels] for r in report["models"]]
    counts = ", ".join(f"{k}: {report['reference']['per_class'][k]['count']}" for k in labels)
    lines += [format_table(rows, ["model"] + labels), "", f"Test images per class: {counts}.", "",
              "## Operators", ""]
    for r in report["models"]:
        lines.append(f"- `{r['file']}` ({r['input']['dtype']} in, {r['output']['dtype']} out): "
                     + ", ".join(r["ops"]))
    if report["failures"]:
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report["failures"]]
    return "\n".join(lines) + "\n"


def write(report: dict, folder: Path) -> None:
    for path in (atomic_write_json(folder / JSON_NAME, report), atomic_write_text(folder / MD_NAME, markdown(report))):
        path.chmod(0o644)  # like the models beside it (the atomic temp file is created private)


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _ci(ci) -> str:
    return f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}"


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"
