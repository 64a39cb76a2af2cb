"""How fast the frozen MobileNetV2 base runs forward: Keras ``predict`` (what phase 1's feature extraction, phase 2's
validation and the final evaluation use today) against the same base converted to a float32 .tflite on LiteRT.

A question for the training recipe, not a feature: extraction and evaluation are a fixed ~60 s of a cats-vs-dogs
training run (benchmarks/results/train-*-2026-12-07.md), and the training time target is a ratio to the Keras
tutorial. If LiteRT runs the same numbers several times as fast, extracting there is worth its conversion time.

    python -m benchmarks.extraction_speed [--images 256] [--repeats 3]

Random uint8 images (speed does not depend on content); medians of ``--repeats`` passes over all images per engine,
interleaved so machine load hits both alike; the largest absolute feature difference shows the two compute the same
function. Writes benchmarks/results/extraction-speed-<machine>-<date>.{md,json}.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

import numpy as np

from benchmarks.recipe_study import WEIGHTS
from benchmarks.records import write_record
from edgeclf.runtime.machine import machine_info, usable_cores


def base_model(size: int = 224):
    """uint8-range float input -> pooled features: the base as phase 1's extractor sees it."""
    import keras

    inputs = keras.Input((size, size, 3))
    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, pooling="avg",
                                          weights=str(WEIGHTS) if WEIGHTS.exists() else "imagenet")
    outputs = base(keras.applications.mobilenet_v2.preprocess_input(inputs), training=False)
    return keras.Model(inputs, outputs)


def measure(images: int, repeats: int, threads: int) -> dict:
    model = base_model()
    pixels = np.random.default_rng(0).integers(0, 256, (images, 224, 224, 3)).astype(np.float32)
    from edgeclf.train.features import litert_runner, to_tflite  # what phase 1 runs

    started = time.perf_counter()
    flatbuffer = to_tflite(model)
    convert_s = time.perf_counter() - started
    engines = {"keras predict, batch 64": lambda x: model.predict(x, batch_size=64, verbose=0)}
    for batch in (1, 32):
        engines[f"litert float32, batch {batch}"] = litert_runner(flatbuffer, model.input_shape[1:], batch=batch,
                                                                  num_threads=threads)
    outputs = {name: run(pixels[:64]) for name, run in engines.items()}  # warm-up
    times = {name: [] for name in engines}
    for _ in range(repeats):
        for name, run in engines.items():
            started = time.perf_counter()
            outputs[name] = run(pixels)
            times[name].append((time.perf_counter() - started) / images * 1000)
    reference = outputs["keras predict, batch 64"]
    rows = [{"engine": name, "ms_per_image": round(statistics.median(ms), 2), "runs_ms": [round(m, 2) for m in ms],
             "max_abs_diff": float(np.abs(outputs[name] - reference).max())} for name, ms in times.items()]
    keras_ms = rows[0]["ms_per_image"]
    for row in rows:
        row["speedup_vs_keras"] = round(keras_ms / row["ms_per_image"], 2)
    return {"machine": machine_info(), "images": images, "repeats": repeats, "threads": threads,
            "litert_convert_s": round(convert_s, 1), "rows": rows}


def render(result: dict) -> str:
    lines = [f"# Forward speed of the frozen MobileNetV2 base ({result['machine']['cpu_model']}, "
             f"{result['machine']['cores']} cores, {date.today()})", "",
             f"`python -m benchmarks.extraction_speed`: {result['images']} random 224 px images, median of "
             f"{result['repeats']} interleaved passes; LiteRT on {result['threads']} threads (XNNPACK); converting the "
             f"base to .tflite took {result['litert_convert_s']} s.", "",
             "| engine | ms per image (median) | vs Keras | largest feature difference |", "|---|---:|---:|---:|"]
    lines += [f"| {r['engine']} | {r['ms_per_image']} | {r['speedup_vs_keras']}x | {r['max_abs_diff']:.1e} |"
              for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=usable_cores())
    args = parser.parse_args()
    result = measure(args.images, args.repeats, args.threads)
    write_record("extraction-speed", result, render(result))


if __name__ == "__main__":
    main()
