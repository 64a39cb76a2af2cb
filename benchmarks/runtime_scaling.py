"""How the runtime uses a machine: thread scaling, folder-prediction throughput, and the live loop with a viewer.

    python -m benchmarks.runtime_scaling MODEL.tflite [--photos DIR] [--replay DIR] [--name MACHINE]

* **threads**: Classifier latency on a ready frame at 1, 2 and all usable threads, interleaved in blocks so machine
  load hits every count alike; medians and the speed-up against 1 thread.
* **folder throughput**: the first 2,000 JPEGs under --photos: the time to decode them all (the one preprocessing path,
  one thread), to invoke on them all (every core), and images/s of ``Classifier.classify_many`` with 0 (no overlap),
  1 and 2 decoder threads, against ``n / (decode + invoke)`` (no overlap) and ``n / max(decode, invoke)`` (perfect
  overlap).
* **live**: ``edgeclf camera --source <replay folder> --headless --serve``, FPS from its summary, alternating runs
  with no page viewer and with one (a client that reads the MJPEG stream and polls /label four times a second, as
  the page does; a real browser would render on another device, not on the Pi).

Writes benchmarks/results/runtime-scaling-<machine>-<date>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.machine import machine_info, usable_cores

from benchmarks.records import write_record
from edgeclf.runtime.preprocess import list_images, load_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats_and_dogs_filtered"


def thread_scaling(model: Path, blocks: int = 12, per_block: int = 25) -> dict:
    counts = sorted({1, 2, usable_cores()})
    clfs = {n: Classifier(model, num_threads=n) for n in counts}
    w, h = clfs[1].input_size
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    samples: dict[int, list[float]] = {n: [] for n in counts}
    for clf in clfs.values():
        for _ in range(10):
            clf.probabilities_from_input(frame)
    for block in range(blocks):
        for n in counts if block % 2 == 0 else reversed(counts):
            for _ in range(per_block):
                start = time.perf_counter()
                clfs[n].probabilities_from_input(frame)
                samples[n].append((time.perf_counter() - start) * 1000)
    base = statistics.median(samples[1])
    return {"usable_cores": usable_cores(), "runs_per_count": blocks * per_block,
            "p50_ms": {str(n): round(statistics.median(v), 3) for n, v in samples.items()},
            "speedup_vs_1": {str(n): round(base / statistics.median(v), 3) for n, v in samples.items()}}


def folder_throughput(model: Path, photos: Path, count: int = 2000) -> dict:
    files = [p for p in list_images(photos) if p.suffix.lower() in (".jpg", ".jpeg")][:count]
    clf = Classifier(model)
    list(clf.classify_many(files[:50]))  # warm the file cache and the interpreter
    start = time.perf_counter()
    arrays = [load_image(p, clf.input_size) for p in files]
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    for x in arrays:
        clf.probabilities_from_input(x)
    invoke_s = time.perf_counter() - start
    del arrays
    rates = {}
    for workers in (0, 1, 2):
        start = time.perf_counter()
        done = sum(1 for _ in clf.classify_many(files, workers=workers))
        rates[str(workers)] = round(done / (time.perf_counter() - start), 1)
    n = len(files)
    return {"images": n, "threads": clf.num_threads, "decode_s": round(decode_s, 3), "invoke_s": round(invoke_s, 3),
            "decode_ms_per_image": round(1000 * decode_s / n, 3), "invoke_ms_per_image": round(1000 * invoke_s / n, 3),
            "images_per_s_no_overlap_bound": round(n / (decode_s + invoke_s), 1),
            "images_per_s_perfect_overlap_bound": round(n / max(decode_s, invoke_s), 1),
            "images_per_s_by_decoder_threads": rates}


def _viewer(url: str, stop: threading.Event, counts: dict) -> None:
    """What the page asks of the server: the MJPEG stream, and /label four times a second."""
    def poll():
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url + "label", timeout=10) as r:
                    r.read()
            except OSError:  # the run ended and the server went away
                return
            counts["labels"] += 1
            stop.wait(0.25)

    threading.Thread(target=poll, daemon=True).start()
    try:
        with urllib.request.urlopen(url + "stream.mjpg", timeout=30) as r:
            while not stop.is_set():
                chunk = r.read1(65536)
                if not chunk:
                    break
                counts["bytes"] += len(chunk)
                counts["parts"] += chunk.count(b"--edgeclfframe")
    except OSError:
        pass


def live_run(model: Path, replay: Path, frames: int, viewer: bool) -> dict:
    cmd = [sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(replay), "--headless",
           "--max-frames", str(frames), "--serve", "127.0.0.1:0", "--loop"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    while url is None:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError("edgeclf camera exited before serving")
        found = re.search(r"serving the live feed at (http://\S+)", line)
        url = found.group(1) if found else None
    stop, counts = threading.Event(), {"bytes": 0, "parts": 0, "labels": 0}
    watcher = threading.Thread(target=_viewer, args=(url, stop, counts), daemon=True) if viewer else None
    if watcher:
        watcher.start()
    out, _ = proc.communicate(timeout=900)
    stop.set()
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    return {"viewer": viewer, "fps": summary["fps"], "frames": summary["frames"],
            "inference_p50_ms": summary["stages"]["inference"]["p50"], "mjpeg_parts": counts["parts"],
            "label_polls": counts["labels"]}


def live_with_viewer(model: Path, replay: Path, frames: int = 800, rounds: int = 3) -> dict:
    runs = []
    for i in range(rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        runs += [live_run(model, replay, frames, viewer) for viewer in order]
    fps = {key: statistics.median(r["fps"] for r in runs if r["viewer"] is value)
           for key, value in (("headless", False), ("viewer", True))}
    return {"frames_per_run": frames, "rounds": rounds, "runs": runs,
            "median_fps": fps, "viewer_vs_headless": round(fps["viewer"] / fps["headless"], 4)}


def to_markdown(result: dict) -> str:
    m, t, f, live = result["machine"], result["threads"], result["throughput"], result["live"]
    lines = [f"# Runtime scaling on {m['cpu_model']} ({m['usable_cores']} usable cores), {m['recorded'][:10]}", "",
             f"Model: `{result['model']}`, {result['backend']}. Produced by `python -m benchmarks.runtime_scaling`.",
             "", f"Load average at the end (1, 5, 15 min): {m.get('load_average')} on {m['usable_cores']} cores. "
             "The comparisons within each table were measured side by side (interleaved or alternating).",
             *[line for note in result.get("notes", []) for line in ("", f"Note: {note}")],
             "", "## Threads (Classifier on a ready frame, interleaved blocks)", "",
             "| threads | p50 ms | speed-up vs 1 |", "|---:|---:|---:|"]
    lines += [f"| {n} | {t['p50_ms'][n]} | {t['speedup_vs_1'][n]}x |" for n in t["p50_ms"]]
    lines += ["", f"The default is every usable core: {t['usable_cores']} here.", "",
              f"## Folder prediction, {f['images']} JPEGs, {f['threads']} interpreter threads", "",
              f"decode {f['decode_ms_per_image']} ms/image, invoke {f['invoke_ms_per_image']} ms/image: "
              f"bounds {f['images_per_s_no_overlap_bound']} img/s with no overlap (sum), "
              f"{f['images_per_s_perfect_overlap_bound']} img/s with perfect overlap (max).", "",
              "| decoder threads | images/s |", "|---:|---:|"]
    lines += [f"| {w} | {r} |" for w, r in f["images_per_s_by_decoder_threads"].items()]
    lines += ["", f"## Live loop, replayed folder, {live['frames_per_run']} frames per run", "",
              f"Median FPS headless (page served, nobody watching) {live['median_fps']['headless']:.1f}, with a viewer "
              f"{live['median_fps']['viewer']:.1f}: **{100 * live['viewer_vs_headless']:.1f} %** of headless.", "",
              "| run | viewer | fps | MJPEG parts sent | inference p50 ms |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {i + 1} | {'yes' if r['viewer'] else 'no'} | {r['fps']} | {r['mjpeg_parts']} | "
              f"{r['inference_p50_ms']} |" for i, r in enumerate(live["runs"])]
    return "\n".join(lines) + "\n"


def rewrite_markdown(json_path: Path) -> None:
    """Regenerate the .md beside a recorded .json (after a change to the report's wording)."""
    json_path.with_suffix(".md").write_text(to_markdown(json.loads(json_path.read_text())))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--photos", type=Path, default=SHARED / "train")
    parser.add_argument("--replay", type=Path, default=SHARED / "validation")
    parser.add_argument("--name", default=None, help="machine name in the file names")
    parser.add_argument("--note", action="append", default=[], help="a line on how the machine was loaded (repeat)")
    args = parser.parse_args(argv)
    clf = Classifier(args.model)
    info = machine_info(clf.backend)
    result = {"model": args.model.name, "backend": clf.backend, "machine": info,
              "threads": thread_scaling(args.model), "throughput": folder_throughput(args.model, args.photos),
              "live": live_with_viewer(args.model, args.replay), "notes": args.note}
    write_record("runtime-scaling", result, to_markdown(result), args.name)
    return result


if __name__ == "__main__":
    main()
