"""Reliability (issue 12): every bad input or fault from the hostile-input battery, reproduced and pinned.

Each test below reproduces one case of the battery; CASES maps the case to its test, so the table in the closing
note and this module stay one list. Corrupt models and images are fuzzed through the real CLI in child processes
(``tests.mutation``), so a crash is counted instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from tests.fixtures.images import synthetic_image
from tests.mutation import REPO_ROOT, run_cli_each, write_mutants
from tests.test_runtime_models import tiny_models  # noqa: F401 (fixture: plain TFLiteConverter output)

CASES = {  # the battery's failures -> the test that reproduces each one
    "mutated exported model: SIGABRT, changed scores with exit 0, 'error: error: unpack_from'":
        "test_mutated_exported_model_never_crashes_or_lies (+ _real, e2e)",
    "mutated model from another converter (no digest)": "test_mutated_plain_model_never_crashes",
    "digest embedded by export, checked before the interpreter, survives re-pack; digest-less models load":
        "test_digest_*",
    "non-UTF-8 file name aborts training; dangling/looping symlinks silently unused":
        "test_odd_file_names_and_symlinks_never_sink_a_run",
    "class with no readable images points at an edgeclf.json that is never written":
        "test_class_with_no_readable_images_lists_them_and_names_the_folder",
    "--alpha 0 / --alpha 2 accepted": "test_train_usage_error_is_one_line_fast_and_without_tensorflow[alpha]",
    "--resume with truncated last.keras / truncated state.json / deleted last.keras":
        "test_resume_with_a_truncated_checkpoint_names_it, _truncated_state_, _checkpoint_deleted_",
    "kill -9 during export leaves .export-staging-*": "test_next_export_removes_stale_staging_folders",
    "permission-denied file reported as corrupt": "test_permission_denied_*",
    "predict | head -1 ends with BrokenPipeError": "test_broken_pipe_exits_quietly",
    "duplicate labels accepted": "test_duplicate_labels_are_refused",
    "camera --record suggests a --out it does not have": "test_record_names_the_option_that_exists",
    "--record into an unwritable folder says 'recorded' first": "test_record_into_an_unwritable_folder_fails_first",
    "click's own errors are three lines": "test_click_usage_errors_are_one_line_exit_2",
    "train imports TensorFlow (6-10 s, 8 log lines) before validating":
        "test_train_usage_error_is_one_line_fast_and_without_tensorflow, test_tensorflow_start_up_logs_are_silenced",
    "mutated images": "test_mutated_images_never_crash_and_are_listed",
}

MODEL_MUTATIONS = int(os.environ.get("EDGECLF_MODEL_MUTATIONS", 500))
IMAGE_MUTATIONS = int(os.environ.get("EDGECLF_IMAGE_MUTATIONS", 300))


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def probe_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("probe") / "probe.jpg"
    synthetic_image(0, 7).save(path, quality=90)
    return path


def predict_argv(image: Path) -> list[str]:
    return ["predict", "{}", str(image), "--json", "--top-k", "2"]


def check_model_mutants(model: Path, image: Path, dest: Path, n: int, *, exported: bool) -> dict:
    """Fuzz ``model`` ``n`` times through ``edgeclf predict``; assert no signal or hang, one-line errors naming the
    file, and (for edgeclf-exported files, which carry a digest) no mutant that runs at all."""
    started = time.perf_counter()
    mutants = write_mutants(model, dest, n, seed=12)
    results = run_cli_each(mutants, predict_argv(image))
    crashed = [r for r in results if "exit" not in r]
    assert not crashed, f"{len(crashed)} of {n} mutants killed or hung the process, e.g. {crashed[:3]}"
    uncaught = [r for r in results if r["uncaught"]]
    assert not uncaught, f"{len(uncaught)} mutants raised through the CLI, e.g. {uncaught[:3]}"
    failures = [r for r in results if r["exit"] != 0]
    bad_lines = [r for r in failures if not (one_line(r["stderr"]) and r["stderr"].startswith("error: ")
                                             and not r["stderr"].startswith("error: error:")
                                             and Path(r["file"]).name in r["stderr"])]
    assert not bad_lines, f"{len(bad_lines)} failures are not one line naming the file, e.g. {bad_lines[:3]}"
    if exported:
        ran = [r for r in results if r["exit"] == 0]
        assert not ran, f"{len(ran)} of {n} mutated exported models ran with exit 0, e.g. {ran[:3]}"
        assert all("corrupt" in r["stderr"] for r in failures)
    return {"n": n, "failed": len(failures), "seconds": round(time.perf_counter() - started, 1)}


def test_mutated_exported_model_never_crashes_or_lies(tiny_tflite, probe_image, tmp_path):
    model = tiny_tflite("int8")
    check_model_mutants(model, probe_image, tmp_path / "mutants", MODEL_MUTATIONS, exported=True)


def test_mutated_plain_model_never_crashes(tiny_models, probe_image, tmp_path):
    """A model from another converter has no digest: damaged weights may run (nothing can tell), but the structure
    check keeps every damaged offset, index, shape or quantization parameter away from the interpreter."""
    labels = tmp_path / "labels.txt"
    labels.write_text("red\nblue\ngreen\n")
    argv = predict_argv(probe_image) + ["--labels", str(labels)]
    mutants = write_mutants(tiny_models / "uint8.tflite", tmp_path / "mutants", MODEL_MUTATIONS, seed=3)
    results = run_cli_each(mutants, argv)
    crashed = [r for r in results if "exit" not in r]
    assert not crashed, f"{len(crashed)} of {len(results)} mutants killed or hung the process, e.g. {crashed[:3]}"
    failures = [r for r in results if r["exit"] != 0]
    assert failures and all(one_line(r["stderr"]) and Path(r["file"]).name in r["stderr"] for r in failures), \
        [r["stderr"] for r in failures if not one_line(r["stderr"]) or Path(r["file"]).name not in r["stderr"]][:3]


@pytest.mark.e2e
def test_mutated_exported_model_real(real_export, probe_image, tmp_path):
    check_model_mutants(real_export / "model_int8.tflite", probe_image, tmp_path / "mutants", MODEL_MUTATIONS,
                        exported=True)


# --- the digest ----------------------------------------------------------------------------------------------------

def test_digest_is_embedded_and_matches(tiny_tflite):
    from edgeclf.runtime.model_check import content_digest, digest_span

    for fmt in ("float32", "int8"):
        data = tiny_tflite(fmt).read_bytes()
        span = digest_span(data)
        assert span is not None and span[1] - span[0] == 32
        assert content_digest(data, span) == data[span[0]:span[1]]


def test_digest_refuses_a_changed_weight_before_any_interpreter_exists(tiny_tflite, tmp_path, monkeypatch):
    from edgeclf.errors import ModelError
    from edgeclf.runtime import classifier

    data = bytearray(tiny_tflite("int8").read_bytes())
    data[len(data) // 3] ^= 0x01  # a weight byte: the interpreter would run it and print different scores
    path = tmp_path / "changed.tflite"
    path.write_bytes(bytes(data))
    created = []
    monkeypatch.setattr(classifier, "load_interpreter", lambda *a, **k: created.append(a) or 1 / 0)
    with pytest.raises(ModelError, match="changed.tflite: corrupt or modified model"):
        classifier.Classifier(path)
    assert not created


def test_digest_survives_re_embedding(tiny_tflite):
    """Re-packing an exported model (new metadata) seals it again: the old digest is replaced, not kept stale."""
    import io
    import zipfile

    from edgeclf.export.metadata import embed_metadata
    from edgeclf.runtime.model_check import check_model_bytes

    data = tiny_tflite("int8").read_bytes()
    contract = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("edgeclf-model.json"))
    contract["labels"] = ["kitten", "puppy"]
    again = embed_metadata(data, contract, name="again", description="re-embedded")
    assert again != data and check_model_bytes(again, "again") is True


def test_digest_less_models_from_other_converters_still_load(tiny_models, tmp_path):
    from edgeclf.runtime.classifier import Classifier
    from edgeclf.runtime.model_check import check_model_bytes

    data = (tiny_models / "uint8.tflite").read_bytes()
    assert check_model_bytes(data, "plain") is False
    clf = Classifier(tiny_models / "uint8.tflite", labels=["red", "blue", "green"])
    assert clf.probabilities(synthetic_image(0, 1)).shape == (3,)


def test_digest_missing_from_an_edgeclf_export_is_refused(tiny_tflite, tmp_path):
    """An edgeclf export whose digest entry was renamed (by damage or an old tool) cannot pass as digest-less."""
    from edgeclf.errors import ModelError
    from edgeclf.runtime.model_check import check_model_bytes

    data = tiny_tflite("int8").read_bytes().replace(b"edgeclf_sha256", b"edgeclf_sha255")
    with pytest.raises(ModelError, match="content digest is missing"):
        check_model_bytes(data, "renamed")


# --- messages that mislead -----------------------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("args", [
    ["predict", "--tresh", "0.5", "m.tflite", "x.jpg"],  # unknown option
    ["predict", "-k", "0", "m.tflite", "x.jpg"],  # value out of range
    ["predict"],  # missing argument
    ["bench", "--threads", "many", "m.tflite"],  # wrong type
    ["nosuch"],  # unknown command
])
def test_click_usage_errors_are_one_line_exit_2(args):
    result = invoke(*args)
    assert result.exit_code == 2
    assert one_line(result.stderr) and result.stderr.startswith("error: "), result.stderr
    assert "--help" in result.stderr and "Usage:" not in result.stderr


@pytest.mark.parametrize("command", [["predict", "{model}", "{folder}", "--json", "-q"],
                                     ["camera", "{model}", "--source", "{folder}", "--headless", "--max-frames", "3",
                                      "-q"]])
def test_broken_pipe_exits_quietly(tiny_tflite, tmp_path, command):
    """`edgeclf predict ... | head -1`, `camera --headless | head -2`: the reader is gone before output is flushed."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        synthetic_image(i % 2, i).save(folder / f"p{i}.jpg")
    argv = [a.format(model=tiny_tflite("int8"), folder=folder) for a in command]
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO_ROOT)
    proc.stdout.close()  # like `head` exiting
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert stderr == "", stderr


def test_duplicate_labels_are_refused(tiny_tflite, tmp_path, probe_image):
    labels = tmp_path / "labels.txt"
    labels.write_text("cats\ncats\n")
    result = invoke("predict", str(tiny_tflite("int8")), str(probe_image), "--labels", str(labels))
    assert result.exit_code == 2
    assert one_line(result.stderr) and "duplicate label(s) cats" in result.stderr, result.stderr


def deny_reading(monkeypatch, denied: Path) -> None:
    """The kernel's answer for a file this user may not read. Simulated because the tests may run as root, which
    reads anything; only the open() of that one file changes."""
    import builtins
    import errno
    import io

    real_open, real_io_open = builtins.open, io.open

    def guarded(opener):
        def open_(file, *args, **kwargs):
            if isinstance(file, (str, os.PathLike)) and Path(file) == denied:
                raise PermissionError(errno.EACCES, "Permission denied", str(file))
            return opener(file, *args, **kwargs)
        return open_

    monkeypatch.setattr(builtins, "open", guarded(real_open))
    monkeypatch.setattr(io, "open", guarded(real_io_open))


def test_permission_denied_image_is_its_own_category(tiny_tflite, tmp_path, monkeypatch):
    image = tmp_path / "secret.jpg"
    synthetic_image(0, 1).save(image)
    deny_reading(monkeypatch, image)
    result = invoke("predict", str(tiny_tflite("int8")), str(image))
    assert result.exit_code == 1
    assert "secret.jpg: permission denied" in result.stderr and "corrupt" not in result.stderr, result.stderr


def test_permission_denied_while_decoding_training_images(tmp_path, monkeypatch):
    from edgeclf.train.cache import decode_all

    good, denied = tmp_path / "good.jpg", tmp_path / "denied.jpg"
    for path in (good, denied):
        synthetic_image(0, 1).save(path)
    deny_reading(monkeypatch, denied)
    cache = decode_all([good, denied], 32, quiet=True, workers=1)
    assert cache.skipped == [{"path": str(denied), "reason": "permission denied"}]


def test_permission_denied_labels_file(tmp_path, monkeypatch):
    from edgeclf.errors import UsageError
    from edgeclf.contracts import read_labels_file

    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    deny_reading(monkeypatch, labels)
    with pytest.raises(UsageError, match="permission denied.*chmod"):
        read_labels_file(labels)


def test_record_names_the_option_that_exists(tmp_path, probe_image, tiny_tflite):
    existing = tmp_path / "demo.avi"
    existing.write_bytes(b"x")
    result = invoke("camera", str(tiny_tflite("int8")), "--source", str(probe_image.parent), "--headless",
                    "--max-frames", "1", "--record", str(existing))
    assert result.exit_code == 2
    assert "choose another --record" in result.stderr and "--out" not in result.stderr, result.stderr


def test_record_into_an_unwritable_folder_fails_first(tmp_path, probe_image, tiny_tflite):
    pytest.importorskip("cv2")
    target = Path("/proc/edgeclf-test/demo.avi")  # not writable, even for root
    result = invoke("camera", str(tiny_tflite("int8")), "--source", str(probe_image.parent), "--headless",
                    "--max-frames", "1", "--record", str(target))
    assert result.exit_code == 2
    assert one_line(result.stderr) and "cannot write to /proc/edgeclf-test" in result.stderr, result.stderr
    assert "recorded" not in result.stderr


# --- first and fast ------------------------------------------------------------------------------------------------

FAST_SECONDS = 5.0  # importing TensorFlow alone takes longer on the CI machine: this catches "TF imported first"


@pytest.mark.parametrize("args", [
    ["--data", "/nonexistent/photos"],
    ["--alpha", "0", "--weights", "none"],
    ["--alpha", "2", "--weights", "none"],
    ["--image-size", "5000"],
    ["--weights", "/nonexistent/weights.h5"],
    ["--resume", "/nonexistent/run"],
    ["--epochs", "0", "--fine-tune-epochs", "0"],
])
def test_train_usage_error_is_one_line_fast_and_without_tensorflow(args, tmp_path):
    probe = ("import sys; from edgeclf.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             "print('tensorflow' in sys.modules, code)")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, "train", "--out", str(tmp_path / "run"), *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    seconds = time.perf_counter() - started
    assert done.stdout.split() == ["False", "2"], (done.stdout, done.stderr)
    assert one_line(done.stderr) and done.stderr.startswith("error: "), done.stderr
    assert seconds < FAST_SECONDS, f"{seconds:.1f} s"


def test_tensorflow_start_up_logs_are_silenced(tmp_path):
    """What TensorFlow's C++ side prints on import and device set-up never reaches the terminal (without --debug)."""
    probe = ("from edgeclf.native import import_tensorflow_quietly\n"
             "tf = import_tensorflow_quietly()\nprint(tf.constant(2).numpy() * 21)")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "EDGECLF_DEBUG")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(REPO_ROOT)})
    assert done.stdout.strip() == "42"
    assert done.stderr == "", done.stderr


# --- training data that is odd ---------------------------------------------------------------------------------------

BAD_NAME = os.fsdecode(b"bad\xff\xfebytes.jpg")  # not UTF-8: Python holds it with surrogate escapes


def tiny_train(data: Path, out: Path, **options):
    from edgeclf.train.run import TrainOptions, train
    from tests.fixtures.runs import TINY_OPTIONS

    opts = {**TINY_OPTIONS, "epochs": 1, "fine_tune_epochs": 0, **options}
    return train(TrainOptions(data=str(data), out=str(out), **opts), quiet=True)


def test_odd_file_names_and_symlinks_never_sink_a_run(tmp_path):
    """A non-UTF-8 file name is trained on and recorded losslessly; symlinks that dangle or loop are skipped and
    listed with the reason (they used to vanish silently)."""
    from edgeclf.manifest import load_splits
    from tests.fixtures.images import make_dataset

    data = make_dataset(tmp_path / "data", per_class=12)
    synthetic_image(0, 99).save(data / "cats" / BAD_NAME)
    (data / "dogs" / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (data / "dogs" / "loop.jpg").symlink_to(data / "dogs" / "loop.jpg")
    summary = tiny_train(data, tmp_path / "run")
    reasons = {Path(item["path"]).name: item["reason"] for item in summary["skipped"]}
    assert reasons["dangling.jpg"].startswith("dangling symlink") and reasons["loop.jpg"] == "symlink loop"
    recorded = [e.path for split in load_splits(tmp_path / "run").splits.values() for e in split]
    assert f"cats/{BAD_NAME}" in recorded


def test_class_with_no_readable_images_lists_them_and_names_the_folder(tmp_path):
    from edgeclf.errors import UsageError
    from tests.fixtures.images import make_dataset

    data = make_dataset(tmp_path / "data", classes=("cats", "dogs", "fish"), per_class=8)
    for path in (data / "fish").iterdir():
        path.write_bytes(b"not an image")
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--weights", "none",
                                 "--alpha", "0.35", "--image-size", "96", "--epochs", "1", "--fine-tune-epochs", "0"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.stderr
    assert lines[-1].startswith(f"error: --data {data / 'fish'}: class folder has no readable images"), lines[-1]
    assert sum(line.startswith("skipped: ") and "/fish/" in line for line in lines) == 8
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
    assert UsageError  # the exit code above is the usage-error class's


# --- resume and interrupted work -----------------------------------------------------------------------------------

@pytest.fixture
def interrupted_run(tmp_path):
    """A .partial run folder as a killed `edgeclf train` leaves it after 1 of 2 phase-2 epochs (phase 1 off):
    state.json written by the real TrainState, last.keras a real (tiny) Keras file."""
    from dataclasses import asdict

    import keras

    from edgeclf.train.fit import TrainState
    from edgeclf.train.options import TrainOptions
    from tests.fixtures.images import make_dataset

    data = make_dataset(tmp_path / "data", per_class=6)
    out = tmp_path / "run"
    state = TrainState(tmp_path / "run.partial")
    state["options"] = asdict(TrainOptions(data=str(data), out=str(out), weights="none", epochs=0,
                                           fine_tune_epochs=2))
    state["data_root"] = str(data)
    state["phase"], state["done"]["2"] = 2, 1
    state.save()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(state.last_checkpoint)
    return out, state


def resume(out: Path):
    return invoke("train", "--resume", str(out))


def test_resume_with_a_truncated_checkpoint_names_it(interrupted_run):
    out, state = interrupted_run
    data = state.last_checkpoint.read_bytes()
    state.last_checkpoint.write_bytes(data[: len(data) // 2])
    result = resume(out)
    assert result.exit_code == 2 and one_line(result.stderr), result.stderr
    assert f"{state.last_checkpoint} is damaged" in result.stderr and "--force" in result.stderr


def test_resume_with_a_truncated_state_names_it(interrupted_run):
    out, state = interrupted_run
    path = state.dir / "state.json"
    path.write_text(path.read_text()[:40])
    result = resume(out)
    assert result.exit_code == 2 and one_line(result.stderr), result.stderr
    assert f"{path} is damaged" in result.stderr and "--force" in result.stderr


def test_resume_with_the_checkpoint_deleted_says_so(interrupted_run):
    out, state = interrupted_run
    state.last_checkpoint.unlink()
    result = resume(out)
    assert result.exit_code == 2 and one_line(result.stderr), result.stderr
    assert f"{state.last_checkpoint} is missing" in result.stderr and "1 finished epoch" in result.stderr


def test_next_export_removes_stale_staging_folders(tiny_run, tmp_path):
    from tests.fixtures.models import run_export

    out = tmp_path / "export"
    out.mkdir()
    killed = [out / ".export-staging-4194999-abcd", out / ".export-staging-q1w2e3"]  # a dead pid; the old naming
    for folder in killed:
        folder.mkdir()
        (folder / "model_float32.tflite").write_bytes(b"half")
    run_export(tiny_run, out, ("float32",), max_drop=100.0)
    assert not any(p.name.startswith(".export-staging-") for p in out.iterdir()), list(out.iterdir())
    assert (out / "model_float32.tflite").exists()


# --- images --------------------------------------------------------------------------------------------------------

def test_mutated_images_never_crash_and_are_listed(tiny_tflite, tmp_path):
    """IMAGE_MUTATIONS damaged JPEG/PNG copies through one `edgeclf predict --json`: no signal, every file either
    classified or skipped with a one-line reason, exit 1 when any was skipped."""
    source = tmp_path / "src"
    source.mkdir()
    synthetic_image(0, 5, (120, 90)).save(source / "a.jpg", quality=90)
    synthetic_image(1, 6, (120, 90)).save(source / "b.png")
    folder = tmp_path / "mutants"
    files = (write_mutants(source / "a.jpg", folder, IMAGE_MUTATIONS // 2, seed=1)
             + write_mutants(source / "b.png", folder / "png", IMAGE_MUTATIONS - IMAGE_MUTATIONS // 2, seed=2))
    done = subprocess.run([sys.executable, "-m", "edgeclf", "predict", str(tiny_tflite("int8")), str(folder),
                           "--json", "-q"], capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode in (0, 1), (done.returncode, done.stderr[-2000:])
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(str(f) for f in files)
    errors = [r for r in rows if "error" in r]
    assert all(one_line(r["error"]) for r in errors)
    assert done.returncode == (1 if errors else 0)
