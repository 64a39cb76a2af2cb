"""BASELINE — not part of edgeclf. The public Keras/TensorFlow transfer-learning tutorial's recipe, as a script.

This is the reference that ``edgeclf train``'s default recipe is compared against in the benchmark suite (wall time
and test accuracy, same data, same machine, same image size). It deliberately follows the tutorial
(https://www.tensorflow.org/tutorials/images/transfer_learning) step by step and does NOT use any edgeclf code:

* ``image_dataset_from_directory`` on ``train/`` and ``validation/`` (batch 32, shuffled, decoded every epoch),
  ``prefetch(AUTOTUNE)``;
* the tutorial's test split: the first 20 % of the validation batches (``validation.take(n // 5)``), the rest
  stays validation;
* augmentation layers inside the model (``RandomFlip("horizontal")``, ``RandomRotation(0.2)``), then
  ``mobilenet_v2.preprocess_input``, a frozen ``MobileNetV2(include_top=False)`` called with ``training=False``,
  ``GlobalAveragePooling2D``, ``Dropout(0.2)``, ``Dense(1)`` (a logit);
* phase 1: 10 epochs, Adam(1e-4), base frozen; phase 2: 10 more epochs, RMSprop(1e-5), base unfrozen from layer 100;
* ``model.evaluate(test_dataset)``.

Deviations, all forced by this environment and applied equally to edgeclf: the image size is an option (the tutorial
uses 160; the comparison runs at 224, the only size the offline ImageNet checkpoint in ../shared has), and the
ImageNet weights come from a local file (``--weights PATH``) instead of Keras's download.

The tutorial's ``image_dataset_from_directory`` reshuffles the validation files on every pass, so its ``take``/``skip``
"test split" is a different random 20 % of validation each time it is iterated (validation and test overlap across
epochs). That is the tutorial's behaviour and it is kept; because the tutorial never trains on validation images, the
test accuracy is still held-out. For a like-for-like number the script can additionally evaluate the trained model on
edgeclf's recorded test split (``--splits RUN_DIR/splits.json``), which is also drawn from ``validation/`` only.

Run (heavy: ~15 min on 2 CPU cores)::

    flock /tmp/edgeclf-heavy.lock python -m benchmarks.baselines.keras_transfer_learning \\
        --data ../shared/data/cats_and_dogs_filtered \\
        --weights ../shared/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 \\
        --image-size 224 --out /tmp/keras-baseline --result benchmarks/results/baseline-keras-tutorial-<machine>.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH_SIZE = 32
INITIAL_EPOCHS = 10
FINE_TUNE_EPOCHS = 10
FINE_TUNE_AT = 100
BASE_LEARNING_RATE = 0.0001


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def build_model(tf, image_size: int, weights: str):
    """The tutorial's model: augmentation and preprocessing inside, frozen MobileNetV2, one-logit head."""
    img_shape = (image_size, image_size, 3)
    data_augmentation = tf.keras.Sequential([
        tf.keras.layers.RandomFlip("horizontal"),
        tf.keras.layers.RandomRotation(0.2),
    ])
    preprocess_input = tf.keras.applications.mobilenet_v2.preprocess_input
    base_model = tf.keras.applications.MobileNetV2(input_shape=img_shape, include_top=False, weights=weights)
    base_model.trainable = False
    inputs = tf.keras.Input(shape=img_shape)
    x = data_augmentation(inputs)
    x = preprocess_input(x)
    x = base_model(x, training=False)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dropout(0.2)(x)
    outputs = tf.keras.layers.Dense(1)(x)
    return tf.keras.Model(inputs, outputs), base_model


def evaluate_on_splits(tf, model, splits_path: Path, image_size: int, class_names: list[str]) -> dict:
    """Accuracy on edgeclf's recorded test split, loaded the way image_dataset_from_directory loads images
    (tf.io decode, bilinear tf.image.resize), so only the file list differs from the tutorial's own evaluation."""
    splits = json.loads(splits_path.read_text())
    root = Path(splits["root"])
    entries = splits["splits"]["test"]
    paths = [str(root / e["path"]) for e in entries]
    labels = [class_names.index(e["label"]) for e in entries]

    def load(path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.image.resize(img, (image_size, image_size), method="bilinear")

    ds = tf.data.Dataset.from_tensor_slices(paths).map(load).batch(BATCH_SIZE)
    logits = model.predict(ds, verbose=0).reshape(-1)
    predicted = (logits > 0).astype(int)
    correct = int(sum(int(p == y) for p, y in zip(predicted, labels)))
    return {"splits": str(splits_path), "fingerprint": splits.get("fingerprint"), "images": len(labels),
            "correct": correct,
            "accuracy": correct / max(1, len(labels))}


def evaluate_only(args) -> int:
    """Score saved baseline weights on edgeclf's test split (which may only exist after the baseline finished)."""
    import tensorflow as tf

    if not args.splits or not args.result:
        raise SystemExit("--evaluate-only needs --splits and --result")
    result = json.loads(args.result.read_text())
    model, _ = build_model(tf, result["image_size"], None)
    model.load_weights(str(args.evaluate_only))
    result["edgeclf_test_split"] = evaluate_on_splits(tf, model, args.splits, result["image_size"],
                                                      result["class_names"])
    write_result(args.result, result)
    print(json.dumps(result["edgeclf_test_split"], indent=2))
    return 0


def write_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.evaluate_only:
        return evaluate_only(args)

    t_start = time.perf_counter()
    load_start = _loadavg()
    import tensorflow as tf

    tf.keras.utils.set_random_seed(args.seed)
    t_import = time.perf_counter() - t_start

    t0 = time.perf_counter()
    train_dataset, validation_dataset, test_dataset, class_names, val_batches = _datasets(tf, args)
    model, base_model = build_model(tf, args.image_size, args.weights)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=BASE_LEARNING_RATE),
                  loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    t_setup = time.perf_counter() - t0
    history, history_fine, t_phase1, t_phase2 = _fit_two_phases(tf, model, base_model, train_dataset,
                                                                validation_dataset, args)
    t0 = time.perf_counter()
    test_loss, test_accuracy = model.evaluate(test_dataset, verbose=0)
    t_eval = time.perf_counter() - t0
    test_images = sum(int(y.shape[0]) for _, y in test_dataset)  # one more pass: the count of that (reshuffled) take

    result = {
        "what": "BASELINE: Keras transfer-learning tutorial recipe (benchmarks/baselines/keras_transfer_learning.py)",
        "data": str(args.data), "weights": str(args.weights), "image_size": args.image_size,
        "epochs": {"initial": args.initial_epochs, "fine_tune": args.fine_tune_epochs, "fine_tune_at": FINE_TUNE_AT},
        "batch_size": BATCH_SIZE, "seed": args.seed, "class_names": class_names,
        "test": {"split": "tutorial: validation.take(val_batches // 5) (reshuffled each pass)",
                 "batches": val_batches // 5, "images_approx": test_images, "accuracy": float(test_accuracy),
                 "loss": float(test_loss)},
        "wall_time_s": {"import_tf": round(t_import, 2), "data_and_model": round(t_setup, 2),
                        "phase1_frozen": round(t_phase1, 2), "phase2_fine_tune": round(t_phase2, 2),
                        "evaluate": round(t_eval, 2), "train_total": round(t_phase1 + t_phase2, 2),
                        "total": round(time.perf_counter() - t_start, 2)},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # A shared machine slows wall time; CPU seconds and the load average say how much the run had to itself.
        "cpu_time_s": round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),
        "load_average": {"start": load_start, "end": _loadavg()},
        "history": {"phase1": {k: [float(v) for v in vs] for k, vs in history.history.items()},
                    "phase2": {k: [float(v) for v in vs] for k, vs in history_fine.history.items()}},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _save(tf, model, result, args, class_names)
    return 0


def _parse_args(argv):
    parser = argparse.ArgumentParser(description="BASELINE: the Keras transfer-learning tutorial's recipe.")
    parser.add_argument("--data", required=True, type=Path, help="folder with train/ and validation/ class folders")
    parser.add_argument("--weights", default="imagenet", help="MobileNetV2 no-top weights file, or 'imagenet'")
    parser.add_argument("--image-size", type=int, default=160, help="the tutorial uses 160")
    parser.add_argument("--initial-epochs", type=int, default=INITIAL_EPOCHS)
    parser.add_argument("--fine-tune-epochs", type=int, default=FINE_TUNE_EPOCHS)
    parser.add_argument("--seed", type=int, default=0, help="global TF/numpy/python seed (the tutorial sets none)")
    parser.add_argument("--splits", type=Path, help="also evaluate on this edgeclf splits.json test split")
    parser.add_argument("--out", type=Path, help="folder for the trained weights (baseline.weights.h5)")
    parser.add_argument("--result", type=Path, help="write the result JSON here (also printed)")
    parser.add_argument("--evaluate-only", type=Path, metavar="WEIGHTS",
                        help="no training: load baseline.weights.h5 from an earlier run, evaluate on --splits and add "
                             "the numbers to the existing --result file")
    args = parser.parse_args(argv)
    if args.weights.lower() == "none":
        args.weights = None
    return args


def _datasets(tf, args):
    """The tutorial's data: train/ and validation/, test = the first fifth of the validation batches."""
    size = (args.image_size, args.image_size)
    train_dataset = tf.keras.utils.image_dataset_from_directory(
        str(args.data / "train"), shuffle=True, batch_size=BATCH_SIZE, image_size=size)
    validation_dataset = tf.keras.utils.image_dataset_from_directory(
        str(args.data / "validation"), shuffle=True, batch_size=BATCH_SIZE, image_size=size)
    class_names = train_dataset.class_names
    val_batches = int(tf.data.experimental.cardinality(validation_dataset))
    if val_batches // 5 == 0:
        raise SystemExit(f"{args.data / 'validation'}: needs at least 5 batches ({5 * BATCH_SIZE} images) "
                         "for the tutorial's test split")
    test_dataset = validation_dataset.take(val_batches // 5)
    validation_dataset = validation_dataset.skip(val_batches // 5)
    autotune = tf.data.AUTOTUNE
    return (train_dataset.prefetch(buffer_size=autotune), validation_dataset.prefetch(buffer_size=autotune),
            test_dataset.prefetch(buffer_size=autotune), class_names, val_batches)


def _fit_two_phases(tf, model, base_model, train_dataset, validation_dataset, args):
    """The compiled model with its base frozen, then the base from FINE_TUNE_AT on (RMSprop at a tenth of the rate):
    (histories, seconds per phase)."""
    t0 = time.perf_counter()
    history = model.fit(train_dataset, epochs=args.initial_epochs, validation_data=validation_dataset, verbose=2)
    t_phase1 = time.perf_counter() - t0

    base_model.trainable = True
    for layer in base_model.layers[:FINE_TUNE_AT]:
        layer.trainable = False
    model.compile(loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
                  optimizer=tf.keras.optimizers.RMSprop(learning_rate=BASE_LEARNING_RATE / 10),
                  metrics=[tf.keras.metrics.BinaryAccuracy(threshold=0, name="accuracy")])
    t0 = time.perf_counter()
    history_fine = model.fit(train_dataset, epochs=args.initial_epochs + args.fine_tune_epochs,
                             initial_epoch=len(history.epoch), validation_data=validation_dataset, verbose=2)
    return history, history_fine, t_phase1, time.perf_counter() - t0


def _save(tf, model, result: dict, args, class_names) -> None:
    """The weights (--out), the like-for-like number on edgeclf's split (--splits), the JSON (--result, stdout)."""
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        model.save_weights(str(args.out / "baseline.weights.h5"))
        result["weights_file"] = str((args.out / "baseline.weights.h5").resolve())
    if args.splits:
        result["edgeclf_test_split"] = evaluate_on_splits(tf, model, args.splits, args.image_size, class_names)
    if args.result:
        write_result(args.result, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
