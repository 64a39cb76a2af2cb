"""`edgeclf bench` on tiny real .tflite models converted here with TensorFlow (the runtime under test never imports it).

The models are a hand-set colour classifier: global average of the raw pixels, then a dense layer that scores
red minus blue. The synthetic dataset draws "cats" as red shapes and "dogs" as blue ones, so the accuracy the
benchmark must report is known: 100 % for the model, 0 % for the same model with its labels swapped.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.runtime.bench import (BenchConfig, Task, labelled_images, measure, model_format, score, spread,
                                   synthetic_photo)
from tests.fixtures.images import make_dataset, synthetic_image

SIZE = 32


def _colour_model():
    import tensorflow as tf

    inp = tf.keras.Input((SIZE, SIZE, 3), dtype="uint8")
    x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.ops.cast(inp, "float32"))
    dense = tf.keras.layers.Dense(2, activation="softmax")
    out = dense(x)
    dense.set_weights([np.array([[0.05, -0.05], [0.0, 0.0], [-0.05, 0.05]], np.float32), np.zeros(2, np.float32)])
    return tf.keras.Model(inp, out)


@pytest.fixture(scope="session")
def bench_models(tmp_path_factory):
    """{"float32", "int8", "swapped", "nolabels", "dir"}: tiny real .tflite files (no metadata; labels.txt beside)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    root = tmp_path_factory.mktemp("bench-models")
    model = _colour_model()
    (root / "model_float32.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    samples = [np.asarray(synthetic_image(i % 2, i, (SIZE, SIZE)))[None] for i in range(16)]
    conv.representative_dataset = lambda: ([s] for s in samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    (root / "model_int8.tflite").write_bytes(conv.convert())
    (root / "labels.txt").write_text("cats\ndogs\n")
    swapped = root / "swapped"
    swapped.mkdir()
    (swapped / "model_float32.tflite").write_bytes((root / "model_float32.tflite").read_bytes())
    (swapped / "labels.txt").write_text("dogs\ncats\n")
    bare = tmp_path_factory.mktemp("nolabels") / "model.tflite"
    bare.write_bytes((root / "model_float32.tflite").read_bytes())
    return {"float32": str(root / "model_float32.tflite"), "int8": str(root / "model_int8.tflite"),
            "swapped": str(swapped / "model_float32.tflite"), "nolabels": str(bare), "dir": str(root)}


@pytest.fixture
def images(tmp_path):
    return make_dataset(tmp_path / "imgs", per_class=8)


def run(*args):
    result = CliRunner().invoke(cli, ["bench", *args])
    return result


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


# ---- the measurement -----------------------------------------------------------------------------------------------

def test_bench_json_reports_every_measure_for_each_model_and_thread_count(bench_models, images):
    result = run(bench_models["float32"], bench_models["int8"], "--threads", "1,2", "--runs", "12", "--warmup", "2",
                 "--images", str(images), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["format"] == "edgeclf.bench/1"
    assert [(r["name"], r["threads"]) for r in data["results"]] == [
        ("model_float32.tflite", 1), ("model_float32.tflite", 2), ("model_int8.tflite", 1), ("model_int8.tflite", 2)]
    for r in data["results"]:
        assert r["size_bytes"] == os.path.getsize(r["model"])
        assert r["input_size"] == [SIZE, SIZE] and r["backend"] == data["machine"]["interpreter"]
        for kind in ("invoke", "classifier", "frame", "jpeg"):
            s = r[kind]
            assert s["n"] == 12
            assert 0 <= s["min"] <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
        assert r["load_ms"] > 0 and r["first_inference_ms"] > 0
        assert r["throughput_ips"] == pytest.approx(1000 / r["classifier"]["mean"], rel=0.01)
        b = r["breakdown_ms"]
        assert b["decode"] > 0 and b["resize"] > 0 and b["sum"] == pytest.approx(
            b["decode"] + b["resize"] + b["inference"], abs=0.01)
        assert r["memory_mb"]["peak"] > r["memory_mb"]["before_load"] > 0 and r["memory_mb"]["isolated"]
    assert {r["format"] for r in data["results"]} == {"float32", "int8"}
    assert {r["input_dtype"] for r in data["results"]} == {"uint8"}
    assert {r["output_dtype"] for r in data["results"]} == {"float32", "uint8"}
    acc = data["accuracy"]
    assert acc["images"] == 16
    for model in (bench_models["float32"], bench_models["int8"]):
        a = acc["per_model"][model]
        assert a["accuracy"] == 1.0 and a["correct"] == 16 and a["agreement_with_first"] == 1.0
        assert a["ci95"][0] < 1.0 <= a["ci95"][1] + 1e-9
        # the keys export's report.json has, from the models' scores (top-k needs 3 classes, these have 2)
        assert a["macro_f1"] == 1.0 and a["per_class"]["cats"]["f1"] == 1.0 and a["top_k"] == {}
        assert 0 <= a["ece"] <= 0.5 and a["thresholds"]["0.5"]["coverage"] == 1.0
    assert list(acc["pairwise_agreement"].values()) == [1.0]
    assert data["machine"]["cores"] == os.cpu_count()


def test_accuracy_and_agreement_detect_a_model_that_is_always_wrong(bench_models, images):
    result = run(bench_models["float32"], bench_models["swapped"], "--runs", "3", "--warmup", "0",
                 "--images", str(images), "--json", "--quiet", "--no-isolate")
    assert result.exit_code == 0, result.output
    acc = json.loads(result.output)["accuracy"]
    assert acc["per_model"][bench_models["float32"]]["accuracy"] == 1.0
    assert acc["per_model"][bench_models["swapped"]]["accuracy"] == 0.0
    assert acc["per_model"][bench_models["swapped"]]["agreement_with_first"] == 0.0


def test_unreadable_images_are_skipped_counted_and_listed(bench_models, images, bad_images):
    (images / "cats" / "broken.jpg").write_bytes(bad_images["truncated"].read_bytes())
    (images / "dogs" / "empty.jpg").write_bytes(b"")
    result = run(bench_models["float32"], "--runs", "3", "--images", str(images), "--json", "--quiet")
    assert result.exit_code == 0, result.output
    acc = json.loads(result.output)["accuracy"]
    a = acc["per_model"][bench_models["float32"]]
    assert (a["count"], a["skipped"], a["accuracy"]) == (16, 2, 1.0)
    assert len(acc["skipped_files"]) == 2 and any("broken.jpg" in s for s in acc["skipped_files"])


def test_text_output_is_a_table_with_the_machine_line(bench_models):
    result = run(bench_models["int8"], "--runs", "5", "--quiet")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "| model" in out and "p50" in out and "model_int8.tflite" in out and "overhead" in out
    assert "synthetic 640x480 JPEG" in out  # no --images: a generated photo-like JPEG is timed end to end
    assert "cores" in out


def test_measure_in_process_overhead_is_relative_to_the_bare_invoke_loop(bench_models):
    jpeg = str(synthetic_jpeg_path(bench_models))
    r = measure(Task(bench_models["float32"], 1, BenchConfig(runs=20, warmup=2, isolate=False), [jpeg]))
    # stats in the record are rounded to 1 ns; the ratios were computed before rounding
    assert 1 + r["overhead"]["p50"] == pytest.approx(r["classifier"]["p50"] / r["invoke"]["p50"], rel=0.05)
    ratios = r["overhead"]["block_ratios"]
    assert len(ratios) == 2  # 20 runs in blocks of 10
    assert r["overhead"]["paired"] == pytest.approx(float(np.median(ratios)) - 1, abs=1e-4)
    assert r["jpeg_vs_invoke"]["p50"] == pytest.approx(r["jpeg"]["p50"] / r["invoke"]["p50"], rel=1e-2)
    assert r["memory_mb"]["isolated"] is False


def synthetic_jpeg_path(bench_models):
    from PIL import Image

    path = os.path.join(bench_models["dir"], "frame.jpg")
    if not os.path.exists(path):
        Image.fromarray(synthetic_photo()).save(path, quality=90)
    return path


# ---- helpers -----------------------------------------------------------------------------------------------------

def test_model_format_from_export_names():
    assert model_format("runs/x/export/model_int8.tflite") == "int8"
    assert model_format("model_float16.tflite") == "float16"
    assert model_format("cats-dynamic.tflite") == "dynamic"
    assert model_format("mobilenet.tflite", "float32") == "unknown"
    assert model_format("mobilenet.tflite", "uint8") == "int8"


def test_spread_takes_evenly_spaced_items():
    assert spread(list(range(10)), 3) == [0, 4, 9] or spread(list(range(10)), 3) == [0, 5, 9]
    assert spread([1, 2], 5) == [1, 2]


def test_score_counts_only_readable_images_and_compares_models_on_common_ones():
    items = [("a", "cats"), ("b", "cats"), ("c", "dogs"), ("d", "dogs")]
    out = score(items, {"m1": ["cats", "dogs", "dogs", None], "m2": ["cats", "cats", "dogs", "dogs"]})
    assert out["per_model"]["m1"]["accuracy"] == pytest.approx(2 / 3) and out["per_model"]["m1"]["skipped"] == 1
    assert out["per_model"]["m2"]["accuracy"] == 1.0
    assert out["common_images"] == 3 and out["pairwise_agreement"] == {"m1 | m2": pytest.approx(2 / 3)}


def test_synthetic_photo_is_deterministic_and_photo_like():
    a, b = synthetic_photo((64, 48), seed=3), synthetic_photo((64, 48), seed=3)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert 20 < a.std() < 120  # neither flat nor saturated noise


# ---- bad input -----------------------------------------------------------------------------------------------------

def test_missing_model_file(tmp_path):
    one_line_error(run(str(tmp_path / "nope.tflite")), "nope.tflite", "not found")


def test_not_a_model_file(tmp_path):
    fake = tmp_path / "notes.tflite"
    fake.write_text("hello, I am not a flatbuffer\n" * 10)
    one_line_error(run(str(fake)), "notes.tflite", "not a TensorFlow Lite model")


def test_a_directory_instead_of_a_model(bench_models):
    one_line_error(run(bench_models["dir"]), "is a directory")


def test_model_without_labels_needs_labels_file(bench_models, tmp_path):
    one_line_error(run(bench_models["nolabels"], "--runs", "2"), "--labels")
    labels = tmp_path / "labels.txt"
    labels.write_text("cats\ndogs\n")
    assert run(bench_models["nolabels"], "--labels", str(labels), "--runs", "2", "-q").exit_code == 0


def test_empty_image_folder(bench_models, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(run(bench_models["float32"], "--images", str(tmp_path / "empty")), "empty folder")
    (tmp_path / "empty" / "cats").mkdir()
    one_line_error(run(bench_models["float32"], "--images", str(tmp_path / "empty")), "no images")


def test_missing_image_folder(bench_models, tmp_path):
    one_line_error(run(bench_models["float32"], "--images", str(tmp_path / "nowhere")), "no such folder")


def test_images_without_class_folders(bench_models, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    synthetic_image(0, 0).save(flat / "a.jpg")
    one_line_error(run(bench_models["float32"], "--images", str(flat)), "no class sub-folders")


def test_label_folders_unknown_to_the_model(bench_models, tmp_path):
    root = make_dataset(tmp_path / "imgs", classes=("cats", "birds"), per_class=2)
    err = one_line_error(run(bench_models["float32"], "--images", str(root)), "birds", "unknown to the model")
    assert "cats" not in err.split("(its labels")[0].split("folder(s)")[1]


@pytest.mark.parametrize("threads", ["0", "a,b", "", "2,-1"])
def test_bad_thread_lists(bench_models, threads):
    result = run(bench_models["float32"], "--threads", threads)
    assert result.exit_code == 2 and "--threads" in result.output and "Traceback" not in result.output


def test_bad_runs(bench_models):
    result = run(bench_models["float32"], "--runs", "0")
    assert result.exit_code == 2 and "--runs" in result.output


def test_labelled_images_lists_empty_classes(tmp_path):
    root = make_dataset(tmp_path / "imgs", per_class=2)
    (root / "birds").mkdir()
    items, empty = labelled_images(root, ["birds", "cats", "dogs"])
    assert empty == ["birds"] and len(items) == 4 and {label for _, label in items} == {"cats", "dogs"}


def test_bench_runs_with_tensorflow_blocked(bench_models):
    """`edgeclf bench` must work on a Pi without TensorFlow: block it and run the whole CLI in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "from edgeclf.cli import cli\n"
            f"cli(['bench', {bench_models['int8']!r}, '--runs', '3', '--json', '-q', '--no-isolate'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["results"][0]["backend"].split()[0] in ("ai_edge_litert", "tflite_runtime")


@pytest.mark.e2e
@pytest.mark.slow
def test_bench_real_exports_on_real_test_images(real_run, real_export, tmp_path):
    """Real cats-vs-dogs exports (labels embedded in the files) on 100 images of the run's own test split."""
    from edgeclf.manifest import load_splits

    splits = load_splits(real_run)
    folder = tmp_path / "test-images"
    for entry in spread(splits.files("test"), 100):
        target = folder / entry.label / os.path.basename(entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.join(splits.root, entry.path))
    result = run(str(real_export / "model_float32.tflite"), str(real_export / "model_int8.tflite"),
                 "--images", str(folder), "--runs", "5", "--warmup", "1", "--json", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for model, a in data["accuracy"]["per_model"].items():
        assert a["count"] == 100 and a["accuracy"] >= 0.95, (model, a)
        assert a["agreement_with_first"] >= 0.95
    assert {r["input_size"][0] for r in data["results"]} == {224}
