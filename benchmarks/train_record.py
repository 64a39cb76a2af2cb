"""The training record: ``edgeclf train``'s default recipe on both real datasets, and the Keras-tutorial baseline
side by side with it (same run, same machine, same data, 224 px), written to ``benchmarks/results/``.

Steps, in this order so the ratio pair runs back to back: (1) edgeclf on cats_and_dogs_filtered, (2) the baseline
(benchmarks/baselines/keras_transfer_learning.py, also scored on edgeclf's 500-image test split), (3) edgeclf on
clothing-dataset-small. Each step is a fresh process, timed from outside (wall clock and CPU seconds), and the load
average is sampled around it, because on a shared machine the load decides how far a wall-clock ratio can be trusted.

Run (heavy; about 75 min on a 2-core EPYC VM)::

    python -m benchmarks.train_record --work /tmp/train-record [--steps cats,baseline,clothing]
    python -m benchmarks.train_record --render benchmarks/results/train-<machine>-<date>.json   # the .md again
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.recipe_study import DATASETS, WEIGHTS

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "benchmarks.baselines.keras_transfer_learning"


def timed(cmd: list[str], log) -> dict:
    """Run ``cmd`` and return its wall time, CPU seconds (children) and the load average before and after."""
    log("$ " + " ".join(cmd))
    load0, t0 = os.getloadavg(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: CPU seconds and peak RSS
    wall = time.perf_counter() - t0
    return {"command": " ".join(cmd), "returncode": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "load_before": [round(x, 2) for x in load0], "load_after": [round(x, 2) for x in os.getloadavg()],
            "stdout": stdout}


def edgeclf_step(name: str, work: Path, log) -> dict:
    out = work / f"edgeclf-{name}"
    cmd = [sys.executable, "-m", "edgeclf", "train", "--data", str(DATASETS[name]), "--weights", str(WEIGHTS),
           "--out", str(out), "--force", "--json"]
    step = timed(cmd, log)
    summary = json.loads(step.pop("stdout")) if step["returncode"] == 0 else None
    if summary:
        manifest = json.loads((out / "edgeclf.json").read_text())
        step.update(summary=summary, metrics={k: v for k, v in manifest["metrics"].items() if k != "confusion"},
                    hyperparameters=manifest["hyperparameters"],
                    history=json.loads((out / "history.json").read_text()))
    return step


def baseline_step(work: Path, log) -> dict:
    record = work / "baseline.json"
    cmd = [sys.executable, "-m", BASELINE, "--data", str(DATASETS["cats_and_dogs_filtered"]), "--weights",
           str(WEIGHTS), "--image-size", "224", "--out", str(work / "keras-baseline"), "--result", str(record),
           "--splits", str(work / "edgeclf-cats_and_dogs_filtered" / "splits.json")]
    step = timed(cmd, log)
    step.pop("stdout")
    if record.exists():
        step["result"] = json.loads(record.read_text())
    return step


def _pct(score: dict) -> str:
    return f"{score['accuracy']:.2%} ({score['correct']}/{score['count']})"


def render(record: dict) -> str:
    """The record as markdown: the ratio pair first, then each dataset's accuracy, time and memory."""
    m, steps = record["machine"], record["steps"]
    lines = [f"# edgeclf train: default recipe on {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores "
             f"({m.get('os', '')}, {m.get('recorded', '')[:10]})", "",
             "Each step a fresh process, timed from outside, one after another (load average before/after in the "
             "table). Default options; real ImageNet weights from ../shared.", "",
             *[f"Note: {n}" for n in record.get("notes", [])], "",
             "| step | wall | CPU s | peak RSS | load before → after | test accuracy | validation |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for name, step in steps.items():
        if name == "baseline":
            r = step.get("result", {})
            split = r.get("edgeclf_test_split", {})
            test = f"{split['accuracy']:.2%} ({split['correct']}/{split['images']})" if split else "-"
            val = "-"
        else:
            test = _pct(step["summary"]["test"]) if step.get("summary") else f"failed (rc {step['returncode']})"
            val = _pct(step["summary"]["validation"]) if step.get("summary") else "-"
        lines.append(f"| {name} | {step['wall_s']:.0f} s | {step['cpu_s']:.0f} | {step.get('peak_rss_mb', '-')} MB | "
                     f"{step['load_before'][0]} → {step['load_after'][0]} | {test} | {val} |")
    if "cats" in steps and "baseline" in steps:
        ratio = steps["cats"]["wall_s"] / steps["baseline"]["wall_s"]
        lines += ["", f"**edgeclf / Keras-tutorial baseline wall time on cats_and_dogs_filtered: {ratio:.2f}×** "
                  "(same machine, back to back; the baseline is benchmarks/baselines/keras_transfer_learning.py, "
                  "10 + 10 epochs at 224 px, scored on edgeclf's 500-image test split)."]
    for name, step in steps.items():
        if step.get("summary"):
            lines += ["", *_dataset_section(name, step["summary"])]
    return "\n".join(lines) + "\n"


def _dataset_section(name: str, s: dict) -> list[str]:
    t, tm = s["test"], s["timings"]
    lines = [f"## {name}", "",
             f"- splits: {s['counts']['train']} train / {s['counts']['validation']} validation / "
             f"{s['counts']['test']} test; epochs run: phase 1 {s['epochs_run']['phase1']}, phase 2 "
             f"{s['epochs_run']['phase2']}; best: phase {s['best_epoch']['phase']} epoch {s['best_epoch']['epoch']}",
             f"- time: decode {tm['decode_s']:.0f} s, features {tm.get('features_s', 0):.0f} s, phase 1 "
             f"{tm['phase1_s']:.0f} s, phase 2 {tm['phase2_s']:.0f} s, evaluation {tm.get('evaluate_s', 0):.0f} s "
             f"(in-process total {tm['total_s']:.0f} s)",
             f"- test: {_pct(t)}, 95 % CI {t['ci95'][0]:.1%}–{t['ci95'][1]:.1%}, macro F1 {t['macro_f1']:.3f}"
             + "".join(f", top-{k} {v:.2%}" for k, v in t["top_k"].items()),
             f"- calibration: T = {s['temperature_scaling']['temperature']:.2f}, test ECE "
             f"{s['temperature_scaling']['test_ece_before']:.3f} → {s['temperature_scaling']['test_ece_after']:.3f}",
             "", "| class | test images | accuracy (recall) | precision | F1 |", "|---|---:|---:|---:|---:|"]
    for label, c in sorted(t["per_class"].items(), key=lambda kv: kv[1]["accuracy"]):
        lines.append(f"| {label} | {c['count']} | {c['accuracy']:.1%} | {c['precision']:.1%} | {c['f1']:.3f} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path)
    p.add_argument("--render", type=Path, metavar="JSON", help="only write the .md of an existing record")
    p.add_argument("--steps", default="cats,baseline,clothing")
    p.add_argument("--result", type=Path, help="default: benchmarks/results/train-<machine>-<date>.json; an existing "
                   "record keeps its other steps (and its machine and notes)")
    args = p.parse_args(argv)
    if args.render:
        args.render.with_suffix(".md").write_text(render(json.loads(args.render.read_text())))
        return 0
    if args.work is None:
        p.error("--work is required")
    from edgeclf.runtime.machine import machine_info, machine_slug

    info = machine_info()
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    result = args.result or RESULTS / f"train-{machine_slug(info)}-{today}.json"
    if args.result is None and result.exists():  # an earlier run's record: add steps to it only when asked to
        p.error(f"{result} exists: pass --result {result} to add these steps to it, or --result NEW")
    args.work.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {m}", flush=True)  # noqa: E731
    record = json.loads(result.read_text()) if result.exists() else {"machine": info, "steps": {}}
    steps = {"cats": lambda: edgeclf_step("cats_and_dogs_filtered", args.work, log),
             "baseline": lambda: baseline_step(args.work, log),
             "clothing": lambda: edgeclf_step("clothing-dataset-small", args.work, log)}
    for name in args.steps.split(","):
        step = steps[name]()
        record["steps"][name] = {**step, "finished": dt.datetime.now(dt.timezone.utc).isoformat("T", "seconds")}
        result.write_text(json.dumps(record, indent=1))
        log(f"{name}: wall {record['steps'][name]['wall_s']} s, rc {record['steps'][name]['returncode']}")
    result.with_suffix(".md").write_text(render(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
