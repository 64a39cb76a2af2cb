"""`edgeclf predict`: files and folders, top-k, threshold, JSON lines, CSV, skipped files and exit codes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgeclf.cli import cli
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import LABELS, model_copy, tiny_models  # noqa: F401


@pytest.fixture
def model(tiny_models, tmp_path):
    return model_copy(tiny_models, "int8", tmp_path / "model")


@pytest.fixture
def photos(tmp_path):
    """photos/{red,blue,green}/ with two images each, one nested deeper, plus a corrupt file and a text file."""
    root = tmp_path / "photos"
    for c, name in enumerate(LABELS):
        (root / name / "deeper").mkdir(parents=True)
        synthetic_image(c, 900 + c).save(root / name / f"{name}_a.jpg", quality=92)
        synthetic_image(c, 950 + c).save(root / name / "deeper" / f"{name}_b.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def run(*args):
    result = CliRunner().invoke(cli, ["predict", *map(str, args)])
    return result


def test_folder_recursive_human_output_and_failure_exit_code(model, photos):
    result = run(model, photos)
    assert result.exit_code == 1  # broken.jpg failed
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert len(lines) == 6
    for path, shown in lines:
        expected = next(name for name in LABELS if f"/{name}/" in path)
        assert shown.split()[0] == expected
    assert "skipped:" in result.stderr and "broken.jpg" in result.stderr
    assert "6 images classified, 1 skipped" in result.stderr
    assert "notes.txt" not in result.output


def test_all_good_files_exit_zero(model, photos):
    result = run(model, photos / "red", photos / "blue" / "blue_a.jpg")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 3


def test_json_lines_with_top_k_and_threshold(model, photos):
    result = run(model, photos, "--json", "--top-k", "2", "--threshold", "0.999")
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 7 and result.exit_code == 1
    errors = [r for r in rows if "error" in r]
    assert [r["path"].rsplit("/", 1)[1] for r in errors] == ["broken.jpg"]
    for r in rows:
        if "error" in r:
            continue
        assert len(r["top_k"]) == 2 and r["top_k"][0]["score"] >= r["top_k"][1]["score"]
        assert r["score"] == r["top_k"][0]["score"]
        assert r["label"] == (r["top_k"][0]["label"] if r["score"] >= 0.999 else "unknown")
    assert any(r.get("label") == "unknown" for r in rows)  # 0.999 is above what this tiny model reaches on some


def test_csv_output(model, photos):
    result = run(model, photos, "--csv", "-k", "3")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 7
    assert list(rows[0]) == ["path", "label", "score", "label_1", "score_1", "label_2", "score_2", "label_3",
                             "score_3", "error"]
    broken = [r for r in rows if r["error"]]
    assert len(broken) == 1 and broken[0]["label"] == ""
    for r in rows:
        if not r["error"]:
            assert {r["label_1"], r["label_2"], r["label_3"]} == set(LABELS)
            assert float(r["score_1"]) >= float(r["score_2"]) >= float(r["score_3"])


def test_labels_option_and_model_without_labels(tiny_models, tmp_path, photos):
    bare = model_copy(tiny_models, "int8", tmp_path / "bare", metadata=False)
    result = run(bare, photos / "red")
    assert result.exit_code == 2 and "pass --labels FILE" in result.stderr
    (tmp_path / "labels.txt").write_text("R\nB\nG\n")
    result = run(bare, photos / "red", "--labels", tmp_path / "labels.txt", "--threads", "1")
    assert result.exit_code == 0 and all(line.split("\t")[1].startswith("R ")
                                         for line in result.stdout.strip().splitlines())


@pytest.mark.parametrize("args, message", [
    (["missing.tflite", "x.jpg"], "model file not found"),
    (["--json", "--csv"], "cannot be combined"),
    (["--top-k", "0"], "--top-k"),
    (["--threshold", "1.5"], "--threshold"),
])
def test_usage_errors_exit_2_with_one_line(model, photos, args, message):
    argv = args if args[0].endswith(".tflite") else [model, photos, *args]
    result = run(*argv)
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.output


def test_missing_input_path_is_reported_and_skipped(model, photos, tmp_path):
    result = run(model, photos / "red", tmp_path / "nope.jpg")
    assert result.exit_code == 1 and "nope.jpg: no such file or directory" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 2


def test_empty_folder_is_a_usage_error(model, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(model, tmp_path / "empty")
    assert result.exit_code == 2 and "no images found" in result.stderr


def test_console_script_runs_in_a_real_process(model, photos):
    proc = subprocess.run([sys.executable, "-m", "edgeclf", "predict", str(model), str(photos / "green"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["label"] for line in proc.stdout.splitlines()] == ["green", "green"]
    assert "XNNPACK" not in proc.stderr  # the native runtime's INFO line is kept off the console


def test_ctrl_c_stops_between_images_with_whole_lines_and_a_count(model, tmp_path):
    import signal

    from tests.fixtures.signals import default_sigint

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1500):
        synthetic_image(i % 3, i, (16, 12)).save(folder / f"{i:04d}.png")
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "predict", str(model), str(folder), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    first = [proc.stdout.readline() for _ in range(5)]  # really classifying; then stop reading: the pipe fills
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines = first + out.splitlines(keepends=True)
    assert proc.returncode == 130, err
    assert all(json.loads(line)["label"] in LABELS for line in lines)  # every line whole
    assert f"{len(lines)} images classified; interrupted" in err and "Traceback" not in err
    assert 5 <= len(lines) < 1500
