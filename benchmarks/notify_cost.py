"""What `edgeclf camera --mqtt/--webhook` costs the live loop, worst case: every frame a new answer.

    python -m benchmarks.notify_cost MODEL.tflite [--photos DIR] [--frames 600] [--rounds 3]

The replay folder alternates a cat and a dog photo (from --photos, cats_and_dogs_filtered/validation by default), and
``--hold 1`` makes every frame a change, so each frame publishes one MQTT message (a local Mosquitto broker) and
one webhook POST (a local HTTP server): far more than a real scene sends. Runs alternate plain ``--headless`` and
``--headless --mqtt --webhook`` so machine load hits both alike; FPS and inference p50 come from each run's summary.

Writes benchmarks/results/notify-cost-<machine>-<date>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.machine import machine_info

from benchmarks.records import write_record

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats_and_dogs_filtered" / "validation"


class Counter(BaseHTTPRequestHandler):
    posts = 0

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        Counter.posts += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def alternating_replay(photos: Path, out: Path, pairs: int = 50) -> Path:
    """cat, dog, cat, dog, ...: a new answer on every frame."""
    cats, dogs = sorted((photos / "cats").glob("*.jpg"))[:pairs], sorted((photos / "dogs").glob("*.jpg"))[:pairs]
    for i, (cat, dog) in enumerate(zip(cats, dogs)):
        shutil.copy(cat, out / f"{2 * i:04d}.jpg")
        shutil.copy(dog, out / f"{2 * i + 1:04d}.jpg")
    return out


def broker(workdir: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (workdir / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([exe, "-c", str(workdir / "mosquitto.conf")], stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    raise RuntimeError("mosquitto did not start")


def run(model: Path, replay: Path, frames: int, sends: list[str]) -> dict:
    cmd = [sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(replay), "--loop", "--headless",
           "--max-frames", str(frames), "--hold", "1", *sends]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])["summary"]
    changes = sum(1 for a, b in zip(lines[:-2], lines[1:-1]) if json.loads(a)["label"] != json.loads(b)["label"])
    return {"sends": bool(sends), "fps": summary["fps"], "frames": summary["frames"], "label_changes": changes,
            "inference_p50_ms": summary["stages"]["inference"]["p50"]}


def measure(model: Path, photos: Path, frames: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "replay").mkdir()
        replay = alternating_replay(photos, work / "replay")
        mosquitto, port = broker(work)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Counter)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sends = ["--mqtt", f"mqtt://127.0.0.1:{port}/bench", "--webhook",
                 f"http://127.0.0.1:{server.server_port}/hook"]
        try:
            runs = []
            for i in range(rounds):
                for with_sends in ((False, True) if i % 2 == 0 else (True, False)):
                    runs.append(run(model, replay, frames, sends if with_sends else []))
        finally:
            server.shutdown()
            mosquitto.terminate()
    fps = {key: statistics.median(r["fps"] for r in runs if r["sends"] is value)
           for key, value in (("headless", False), ("mqtt_and_webhook", True))}
    return {"frames_per_run": frames, "rounds": rounds, "runs": runs, "webhook_posts": Counter.posts,
            "median_fps": fps, "with_sends_vs_headless": round(fps["mqtt_and_webhook"] / fps["headless"], 4)}


def to_markdown(result: dict) -> str:
    m, r = result["machine"], result["live"]
    lines = [f"# What --mqtt and --webhook cost the live loop, {m['recorded'][:10]}", "",
             f"Machine: {m['cpu_model']} ({m['usable_cores']} usable cores), load average at the end "
             f"{m.get('load_average')}. Model: `{result['model']}`, {result['backend']}. Produced by "
             "`python -m benchmarks.notify_cost`.", "",
             "Worst case: the replay alternates a cat and a dog photo and `--hold 1` makes every frame a change, so "
             "each frame of a run with sends publishes one MQTT message (local Mosquitto) and POSTs one webhook "
             "(local HTTP server). Runs alternate, so machine load hits both alike.", "",
             f"Median FPS: headless {r['median_fps']['headless']:.1f}, with --mqtt and --webhook "
             f"{r['median_fps']['mqtt_and_webhook']:.1f}: **{100 * r['with_sends_vs_headless']:.1f} %** of headless. "
             f"Webhook POSTs received over all runs: {r['webhook_posts']}.", "",
             "| run | sends | fps | frames | label changes | inference p50 ms |", "|---:|---|---:|---:|---:|---:|"]
    lines += [f"| {i + 1} | {'mqtt + webhook' if x['sends'] else '-'} | {x['fps']} | {x['frames']} | "
              f"{x['label_changes']} | {x['inference_p50_ms']} |" for i, x in enumerate(r["runs"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--photos", type=Path, default=SHARED)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    backend = Classifier(args.model).backend
    result = {"model": args.model.name, "backend": backend, "machine": machine_info(backend),
              "live": measure(args.model, args.photos, args.frames, args.rounds)}
    write_record("notify-cost", result, to_markdown(result))
    return result


if __name__ == "__main__":
    main()
