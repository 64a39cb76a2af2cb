"""`edgeclf train` as a user runs it: the run directory and its contracts, --json/--quiet, refusals, bad images,
imbalanced classes, missing TensorFlow, and resuming after the process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgeclf.cli import cli
from edgeclf.fsutil import sha256_file
from edgeclf.contracts import read_labels_file
from edgeclf.manifest import load_manifest, load_splits
from tests.fixtures.images import make_dataset
from tests.fixtures.signals import default_sigint
from tests.fixtures.runs import TINY_OPTIONS

REPO = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--weights", "none", "--alpha", "0.35", "--image-size", "64", "--epochs", "1", "--fine-tune-epochs", "0",
             "--batch-size", "16", "--lr", "0.005"]


def run_cli(*args):
    result = CliRunner().invoke(cli, ["train", *map(str, args)], catch_exceptions=False)
    return result


# ---- the run directory -------------------------------------------------------------------------------------------

def test_run_dir_holds_every_artifact_and_no_scratch(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert names == {"model.keras", "edgeclf.json", "splits.json", "labels.txt", "history.json",
                     "learning_curves.png", "confusion_matrix.png", "data_check.json", "reliability.png",
                     "mistakes.png"}
    for png in ("learning_curves.png", "confusion_matrix.png", "reliability.png", "mistakes.png"):
        with Image.open(tiny_run / png) as img:
            assert img.format == "PNG" and img.size[0] > 200
    assert not tiny_run.with_name(tiny_run.name + ".partial").exists()


def test_manifest_records_contract_recipe_data_versions_and_test_metrics(tiny_run):
    m = load_manifest(tiny_run)
    splits = load_splits(tiny_run)
    assert m.labels == ["cats", "dogs"] == read_labels_file(tiny_run / "labels.txt") == splits.labels
    assert (m.input.height, m.input.width, m.input.dtype, m.input.color) == (96, 96, "uint8", "RGB")
    assert m.base_model["name"] == "MobileNetV2" and m.base_model["alpha"] == 0.35
    assert m.base_model["weights"] == "none" and m.base_model["fine_tune_at"] == 100
    hp = m.hyperparameters
    for key, value in TINY_OPTIONS.items():
        if key not in ("weights", "alpha"):
            assert hp[key] == value, key
    assert hp["augmentation"]["flip"] == "horizontal"
    assert hp["phase1"]["early_stopping"]["monitor"] == hp["phase2"]["early_stopping"]["monitor"] == "val_loss"
    assert hp["phase1"]["views"] == ["image", "flip"]
    cache = hp["phase1"]["feature_cache"]
    assert cache["train"] == cache["validation"] == "extracted"
    assert cache["engine"] == "keras"  # 48 images: converting to LiteRT would cost more than it saves
    assert hp["distribution"] == {"strategy": "default", "replicas": 1, "devices": None}
    assert m.dataset["fingerprint"] == splits.fingerprint == splits.compute_fingerprint()
    assert m.dataset["counts"]["test"] == {"cats": 4, "dogs": 4}
    assert m.dataset["skipped_count"] == 0
    assert {"tensorflow", "keras", "numpy", "python"} <= set(m.versions)
    test = m.metrics["test"]
    assert test["count"] == len(splits.files("test")) == 8
    assert sum(map(sum, test["confusion"])) == 8 and np.trace(test["confusion"]) == test["correct"]
    assert test["accuracy"] == test["correct"] / 8
    assert set(test["per_class"]) == {"cats", "dogs"}
    assert m.metrics["epochs_run"] == {"phase1": TINY_OPTIONS["epochs"], "phase2": TINY_OPTIONS["fine_tune_epochs"]}
    assert {"decode_s", "features_s", "phase1_s", "phase2_s", "total_s"} <= set(m.metrics["timings"])


def test_test_metrics_are_reproduced_by_the_saved_model_on_the_recorded_test_files(tiny_run):
    import keras

    from edgeclf.runtime.preprocess import load_image

    m, splits = load_manifest(tiny_run), load_splits(tiny_run)
    model = keras.models.load_model(tiny_run / "model.keras")
    entries = splits.files("test")
    for e in entries:
        assert sha256_file(Path(splits.root) / e.path) == e.sha256
    x = np.stack([load_image(Path(splits.root) / e.path, m.input.size) for e in entries])
    predicted = model.predict(x, verbose=0).argmax(axis=1)
    truth = [m.labels.index(e.label) for e in entries]
    assert float(np.mean(predicted == truth)) == pytest.approx(m.metrics["test"]["accuracy"])


def test_history_has_one_record_per_epoch_of_both_phases(tiny_run):
    history = json.loads((tiny_run / "history.json").read_text())
    expected = [(1, e + 1) for e in range(TINY_OPTIONS["epochs"])] + [(2, e + 1)
                                                                       for e in range(TINY_OPTIONS["fine_tune_epochs"])]
    assert [(h["phase"], h["epoch"]) for h in history["history"]] == expected
    assert all({"loss", "accuracy", "val_loss", "val_accuracy"} <= set(h) for h in history["history"])
    assert min(h["val_loss"] for h in history["history"]) == pytest.approx(history["best"]["val_loss"])


@pytest.mark.e2e
def test_tiny_pretrained_run_learns_the_synthetic_classes(tiny_pretrained_run):
    metrics = load_manifest(tiny_pretrained_run).metrics
    assert metrics["validation"]["accuracy"] >= 0.9 and metrics["test"]["accuracy"] >= 0.85


# ---- CLI behaviour -----------------------------------------------------------------------------------------------

def test_json_summary_is_the_only_thing_on_stdout(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=8)
    result = run_cli("--data", data, "--out", tmp_path / "run", *TINY_ARGS, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["run_dir"] == str(tmp_path / "run") and summary["counts"] == {"train": 12, "validation": 2,
                                                                                 "test": 2}
    assert 0 <= summary["test"]["accuracy"] <= 1 and summary["skipped"] == []
    assert "epoch" not in result.stderr  # --json implies no progress chatter


def test_existing_run_is_never_overwritten_without_force(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=8)
    out = tmp_path / "run"
    quiet = run_cli("--data", data, "--out", out, *TINY_ARGS, "-q")
    assert quiet.exit_code == 0 and quiet.stdout == "" and "epoch" not in quiet.stderr
    before = (out / "edgeclf.json").read_bytes()
    refused = run_cli("--data", data, "--out", out, *TINY_ARGS, "-q")
    assert refused.exit_code == 2
    assert refused.stderr.strip().count("\n") == 0
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert (out / "edgeclf.json").read_bytes() == before
    forced = run_cli("--data", data, "--out", out, *TINY_ARGS, "-q", "--seed", "7", "--force")
    assert forced.exit_code == 0
    assert load_manifest(out).hyperparameters["seed"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]  # no .old / .partial left behind


def test_leftover_partial_run_is_not_silently_discarded(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=8)
    (tmp_path / "run.partial").mkdir()
    result = run_cli("--data", data, "--out", tmp_path / "run", *TINY_ARGS, "-q")
    assert result.exit_code == 2 and "interrupted run" in result.stderr and "--resume" in result.stderr


@pytest.mark.parametrize("problem", ["one_class", "mismatch", "missing"])
def test_bad_datasets_exit_2_with_one_line(tmp_path, problem):
    data = tmp_path / "data"
    if problem == "one_class":
        make_dataset(data, classes=("cats",), per_class=4)
    elif problem == "mismatch":
        make_dataset(data, per_class=4, layout="split")
        (data / "validation" / "dogs").rename(data / "validation" / "wolves")
    result = run_cli("--data", data, "--out", tmp_path / "run", *TINY_ARGS)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(data) in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["data"] if problem != "missing" else [])


def test_bad_weights_fail_before_any_work_and_leave_nothing(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=4)
    result = run_cli("--data", data, "--out", tmp_path / "run", "--weights", tmp_path / "nope.h5")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --weights {tmp_path / 'nope.h5'}: file not found (pass imagenet, none, or a path to a weights .h5 "
        "file)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_unreadable_images_are_skipped_and_listed_in_summary_and_manifest(tmp_path, bad_images):
    data = make_dataset(tmp_path / "data", per_class=8)
    bad = ["zero", "notimage", "truncated", "corrupt"]
    good = ["cmyk", "grey", "rgba", "palette", "grey16", "exif_rotated"]
    for i, case in enumerate(bad + good):
        target = data / ("cats" if i % 2 else "dogs") / f"case_{bad_images[case].name}"
        target.write_bytes(bad_images[case].read_bytes())
    result = run_cli("--data", data, "--out", tmp_path / "run", *TINY_ARGS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "phase 1 epoch 1" in result.stderr and "test accuracy" in result.stderr
    assert [line.split("|")[2].strip() for line in result.stderr.splitlines()
            if line.startswith("| skipped unreadable")] == ["4"]
    m = load_manifest(tmp_path / "run")
    skipped = {Path(s["path"]).name for s in m.dataset["skipped"]}
    assert skipped == {f"case_{bad_images[c].name}" for c in bad} and m.dataset["skipped_count"] == 4
    for name in skipped:
        assert f"skipped: {data}" in result.stderr and name in result.stderr
    split_files = {Path(e.path).name for s in ("train", "validation", "test") for e in load_splits(tmp_path / "run")
                   .files(s)}
    assert {f"case_{bad_images[c].name}" for c in good} <= split_files and not skipped & split_files


def test_imbalanced_classes_get_class_weights(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=20)
    for path in sorted((data / "dogs").glob("*.jpg"))[6:]:
        path.unlink()
    assert run_cli("--data", data, "--out", tmp_path / "run", *TINY_ARGS, "-q").exit_code == 0
    weights = load_manifest(tmp_path / "run").hyperparameters["class_weight"]
    assert weights["dogs"] > 1 > weights["cats"]


def test_balanced_classes_get_no_class_weights(tiny_run):
    assert load_manifest(tiny_run).hyperparameters["class_weight"] is None


def test_help_has_examples():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "edgeclf train --resume" in result.output
    assert "--fine-tune-at" in result.output and "[default: 100]" in result.output


def test_without_tensorflow_train_names_the_extra_to_install(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=2)  # valid: options and paths are checked before the import
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            f"from edgeclf.cli import main; sys.argv = ['edgeclf', 'train', '--data', {str(data)!r}, '--out', "
            f"{str(tmp_path / 'run')!r}]; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        'error: edgeclf train needs a package that is not installed (install it with: pip install "edgeclf[train]")']


# ---- resume after a kill -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_killed_run_resumes_losing_at_most_one_epoch(tmp_path, sig):
    data = make_dataset(tmp_path / "data", per_class=10)
    out = tmp_path / "run"
    state_file = tmp_path / "run.partial" / ".checkpoint" / "state.json"
    phase = "1" if sig == signal.SIGKILL else "2"
    # Phase 1 epochs on cached features take milliseconds: many of them (no early stop) leave time to kill one.
    epochs1 = 400 if phase == "1" else 3
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [sys.executable, "-m", "edgeclf", "train", "--data", str(data), "--out", str(out), "--weights", "none",
            "--alpha", "0.35", "--image-size", "64", "--epochs", str(epochs1), "--head-patience", "0",
            "--fine-tune-epochs", "3", "--batch-size", "8", "--patience", "0", "-q"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if state_file.exists():
                state = json.loads(state_file.read_text())
                if state["done"][phase] >= 1:  # killed in phase 1 (kill) or phase 2 (ctrl-c)
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "training finished before it could be killed"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert f"interrupted: continue with  edgeclf train --resume {out}" in stderr
    killed = json.loads(state_file.read_text())
    assert killed["phase"] == int(phase) and killed["done"][phase] < (epochs1 if phase == "1" else 3)
    assert not out.exists()
    before = killed["history"]

    # The interrupted run blocks a fresh one, and --resume continues it.
    assert run_cli("--data", data, "--out", out, *TINY_ARGS, "-q").exit_code == 2
    result = run_cli("--resume", out, "--json")
    assert result.exit_code == 0, result.stderr
    history = json.loads((out / "history.json").read_text())["history"]
    assert [(h["phase"], h["epoch"]) for h in history] == [(1, e + 1) for e in range(epochs1)] + [(2, 1), (2, 2),
                                                                                                 (2, 3)]
    assert history[: len(before)] == before  # finished epochs were kept, not redone
    m = load_manifest(out)
    assert m.hyperparameters["epochs"] == epochs1 and m.hyperparameters["batch_size"] == 8  # options from the run
    if phase == "1":  # the features extracted before the kill were reused, not recomputed
        cache = m.hyperparameters["phase1"]["feature_cache"]
        assert cache["train"] == cache["validation"] == "reused" and cache["engine"] == "keras"
    assert not Path(str(out) + ".partial").exists()
    again = run_cli("--resume", out)
    assert again.exit_code == 2 and "already finished" in again.stderr
