"""`edgeclf export` end to end on the tiny run: outputs, clobbering, --json, and every bad input of issue 3.

Every failure must be one `error:` line (no traceback), a non-zero exit code, and leave nothing half-written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from edgeclf.manifest import load_splits

from tests.fixtures.models import run_export


def invoke(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args)])


def assert_one_line_error(result, code: int, *needles: str):
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run dir (its splits still point at the same dataset, which is never touched)."""
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("export"))
    return dest


def test_export_writes_models_and_reports_and_prints_a_table(run_copy):
    result = invoke(run_copy, "--int8", "--float16", "--max-drop", "100", "--min-agreement", "0",
                    "--calibration-samples", "8")
    assert result.exit_code == 0, result.output
    out = run_copy / "export"
    assert [f for f in listing(out) if not f.endswith(".png")] == ["model_float16.tflite", "model_int8.tflite",
                                                                   "report.json", "report.md"]
    pictures = {f for f in listing(out) if f.endswith(".png")}
    always = {"reliability.png"} | {f"model_{m}-{kind}.png" for m in ("float16", "int8") for kind in ("confusion",
                                                                                                    "mistakes")}
    assert always <= pictures <= always | {"model_float16-flips.png", "model_int8-flips.png"}
    assert "model_int8.tflite" in result.stderr and "agreement" in result.stderr  # the table
    report = json.loads((out / "report.json").read_text())
    assert [m["format"] for m in report["models"]] == ["float16", "int8"]
    assert report["models"][0]["size_ratio_to"] == "float32 weights"  # no float32 file to compare with
    assert 0.45 < report["models"][0]["size_ratio"] < 0.6
    assert report["test_split"]["evaluated"] == len(load_splits(run_copy).files("test"))
    assert report["calibration"]["used"] == 8 and report["calibration"]["split"] == "train"
    md = (out / "report.md").read_text()
    assert "model_int8.tflite" in md and "Per-class accuracy" in md


def test_default_formats_are_float32_and_int8_and_json_goes_to_stdout(run_copy, tmp_path):
    out = tmp_path / "elsewhere"
    result = invoke(run_copy, "--out", out, "--json", "--max-drop", "100", "--min-agreement", "0",
                    "--calibration-samples", "8")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout is pure JSON
    assert [m["file"] for m in report["models"]] == ["model_float32.tflite", "model_int8.tflite"]
    assert report["models"][1]["size_ratio_to"] == "float32"
    assert (out / "model_int8.tflite").is_file() and not (run_copy / "export").exists()


def test_existing_export_is_never_overwritten_without_force(run_copy):
    args = (run_copy, "--float32", "--max-drop", "100")
    assert invoke(*args).exit_code == 0
    model = run_copy / "export" / "model_float32.tflite"
    before = model.read_bytes()
    model.write_bytes(before + b"user's own bytes")
    assert_one_line_error(invoke(*args), 2, "model_float32.tflite", "already exists", "--force")
    assert model.read_bytes() == before + b"user's own bytes"
    assert invoke(*args, "--force").exit_code == 0
    assert model.read_bytes() == before  # conversion is deterministic: the same bytes again
    assert not [p for p in (run_copy / "export").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_io_int8_names_the_file_and_needs_int8(run_copy):
    assert_one_line_error(invoke(run_copy, "--float32", "--io", "int8"), 2, "--io int8", "--int8")
    result = invoke(run_copy, "--int8", "--io", "int8", "--max-drop", "100", "--min-agreement", "0",
                    "--calibration-samples", "8")
    assert result.exit_code == 0, result.output
    assert (run_copy / "export" / "model_int8_io-int8.tflite").is_file()


# --- bad input: one line, non-zero, nothing written ---------------------------------------------------------------

@pytest.mark.parametrize("case, code, needles", [
    ("missing_path", 2, ("no such directory",)),
    ("file_not_dir", 2, ("not a directory",)),
    ("empty_dir", 2, ("edgeclf.json", "not found", "run directory")),
    ("no_manifest", 2, ("edgeclf.json", "not found")),
    ("corrupt_manifest", 2, ("edgeclf.json", "corrupt")),
    ("invalid_manifest", 2, ("edgeclf.json", "not a valid edgeclf manifest")),
    ("no_splits", 2, ("splits.json", "not found")),
    ("corrupt_splits", 2, ("splits.json", "corrupt")),
    ("no_model", 2, ("model.keras", "not found")),
    ("corrupt_model", 2, ("model.keras", "cannot load")),
    ("empty_test_split", 2, ("empty test split",)),
    ("changed_test_file", 2, ("0 of", "missing and 1 changed", "--allow-changed")),
    ("missing_test_file", 2, ("1 of", "missing", "--allow-changed")),
    ("unwritable_out", 2, ("cannot write to", "--out")),
])
def test_bad_input_is_one_line_and_writes_nothing(run_copy, tmp_path, case, code, needles):
    target, out = run_copy, run_copy / "export"
    extra = []
    if case == "missing_path":
        target = tmp_path / "no-such-run"
    elif case == "file_not_dir":
        target = run_copy / "labels.txt"
    elif case == "empty_dir":
        target = tmp_path / "empty"
        target.mkdir()
        out = target / "export"
    elif case == "no_manifest":
        (run_copy / "edgeclf.json").unlink()
    elif case == "corrupt_manifest":
        (run_copy / "edgeclf.json").write_text('{"format": "edgeclf.run/1", "labels": [')
    elif case == "invalid_manifest":
        (run_copy / "edgeclf.json").write_text('{"format": "edgeclf.run/1"}')
    elif case == "no_splits":
        (run_copy / "splits.json").unlink()
    elif case == "corrupt_splits":
        (run_copy / "splits.json").write_bytes(b"\x00\xff not json")
    elif case == "no_model":
        (run_copy / "model.keras").unlink()
    elif case == "corrupt_model":
        data = (run_copy / "model.keras").read_bytes()
        (run_copy / "model.keras").write_bytes(data[: len(data) // 3])
    elif case in ("empty_test_split", "changed_test_file", "missing_test_file"):
        splits = json.loads((run_copy / "splits.json").read_text())
        if case == "empty_test_split":
            splits["splits"]["test"] = []
        elif case == "changed_test_file":
            splits["splits"]["test"][0]["sha256"] = "0" * 64
        else:
            splits["splits"]["test"][0]["path"] = "cats/was-deleted.jpg"
        (run_copy / "splits.json").write_text(json.dumps(splits))
    elif case == "unwritable_out":
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        out = blocker / "export"  # cannot be created, even as root
        extra = ["--out", out]
    before = listing(target if target.is_dir() else tmp_path)
    result = invoke(target, "--all", *extra)
    assert_one_line_error(result, code, *needles)
    assert not Path(out).exists()
    assert listing(target if target.is_dir() else tmp_path) == before


def test_allow_changed_validates_on_what_is_there_and_counts_it(run_copy):
    splits = json.loads((run_copy / "splits.json").read_text())
    test = splits["splits"]["test"]
    test[0]["sha256"] = "0" * 64
    test.append(dict(test[1], path="cats/was-deleted.jpg"))
    (run_copy / "splits.json").write_text(json.dumps(splits))
    result = invoke(run_copy, "--float32", "--allow-changed", "--json", "--max-drop", "100")
    assert result.exit_code == 0, result.output
    t = json.loads(result.stdout)["test_split"]
    assert t["changed"] == [test[0]["path"]] and t["missing"] == ["cats/was-deleted.jpg"]
    assert t["entries"] == len(test) and t["evaluated"] == len(test) - 1


def test_a_conversion_error_from_tensorflow_is_one_line_and_leaves_nothing(run_copy):
    """A real converter failure: a model whose graph needs string ops that TFLite has no builtin kernels for."""
    import keras

    inp = keras.Input((96, 96, 3), dtype="uint8", name="image")
    hashed = keras.layers.Hashing(num_bins=4)(inp)  # AsString + StringToHashBucketFast inside
    x = keras.layers.GlobalAveragePooling2D()(keras.ops.cast(hashed, "float32"))
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)).save(run_copy / "model.keras")
    result = invoke(run_copy, "--float32")
    assert_one_line_error(result, 1, "could not convert the model to float32", "tf.AsString")
    assert not (run_copy / "export").exists()


def test_labels_of_model_and_manifest_must_agree(run_copy):
    manifest = json.loads((run_copy / "edgeclf.json").read_text())
    manifest["labels"] = ["a", "b", "c"]
    (run_copy / "edgeclf.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke(run_copy, "--float32"), 2, "disagree on the labels")


def test_python_api_returns_the_report(run_copy, tmp_path):
    report = run_export(run_copy, tmp_path / "api", ("float32",), max_drop=100.0)
    assert report["status"] == "passed" and report["models"][0]["status"] == "passed"
    assert Path(report["out"], "model_float32.tflite").is_file()
