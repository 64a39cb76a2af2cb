"""The benchmark suite end to end on tiny real models (pre-exported, as on a Pi with --exports): results files,
tables, the training comparison read from records, and bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from benchmarks import suite
from edgeclf.contracts import InputContract
from edgeclf.manifest import Manifest, SplitEntry, Splits
from tests.fixtures.images import make_dataset
from tests.test_bench import bench_models  # noqa: F401  (session fixture: tiny real .tflite files)


@pytest.fixture
def suite_run(tmp_path, bench_models):  # noqa: F811
    """A run dir with a real splits.json/edgeclf.json over synthetic images and 'exports' of the colour model."""
    data = make_dataset(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    run.mkdir()
    test = [SplitEntry(str(p.relative_to(data)), p.parent.name, "") for p in sorted(data.rglob("*.jpg"))]
    splits = Splits(root=str(data), seed=0, labels=["cats", "dogs"], splits={"train": [], "validation": [], "test": test})
    splits.fingerprint = splits.compute_fingerprint()
    splits.save(run)
    Manifest(labels=["cats", "dogs"], input=InputContract(32, 32),
             metrics={"test": {"accuracy": 0.985, "count": 500}, "peak_rss_mb": 2345.0,
                      "timings": {"decode_s": 20.0, "phase1_s": 100.0, "phase2_s": 200.0, "total_s": 330.0}}).save(run)
    export = run / "suite" / "export-32"
    export.mkdir(parents=True)
    for fmt in suite.ALL_FORMATS:
        source = bench_models["int8" if fmt == "int8" else "float32"]
        shutil.copy(source, export / f"model_{fmt}.tflite")
    shutil.copy(Path(bench_models["dir"]) / "labels.txt", export / "labels.txt")
    (export / "report.json").write_text(json.dumps({"reference": {"accuracy": 0.99}}))
    return run


def baseline_record(path: Path, run: Path) -> Path:
    fingerprint = json.loads((run / "splits.json").read_text())["fingerprint"]
    path.write_text(json.dumps({
        "image_size": 224, "test": {"accuracy": 0.9739, "images_approx": 192},
        "wall_time_s": {"total": 1500.0, "train_total": 1400.0}, "peak_rss_mb": 3000.0,
        "edgeclf_test_split": {"accuracy": 0.976, "images": 500, "fingerprint": fingerprint}}))
    return path


def test_suite_writes_markdown_json_and_plot(suite_run, tmp_path, capsys):
    results = tmp_path / "results"
    code = suite.main([str(suite_run), "--sizes", "32", "--threads", "1,2", "--exports", "--runs", "5",
                       "--warmup", "1", "--results", str(results), "--name", "testbox", "--quiet",
                       "--baseline-result", str(baseline_record(tmp_path / "baseline.json", suite_run))])
    assert code == 0
    stem = next(results.glob("testbox-*.json")).stem
    md = (results / f"{stem}.md").read_text()
    data = json.loads((results / f"{stem}.json").read_text())
    png = (results / f"{stem}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert [r["format"] for r in data["summary"]] == list(suite.ALL_FORMATS)
    for row in data["summary"]:
        assert row["accuracy"] == 1.0 and row["agreement_with_float32"] == 1.0 and row["test_images"] == 12
        assert set(row["threads"]) == {"1", "2"}  # JSON keys
    assert data["overhead_summary"]["n"] == 8
    assert data["float_reference"] == {"32": 0.99}
    assert data["machine"]["interpreter"] and "after_run" in data["machine"]
    # The tables a reader needs, with the numbers that went in.
    for heading in ("Accuracy, size and latency per format", "Reference 1: runtime overhead",
                    "Reference 2: end to end", "Reference 3: training"):
        assert heading in md
    assert len(re.findall(r"^\|\s+32 \| (float32|float16|dynamic|int8)\s+\|", md, re.M)) == 3 * 4  # 3 tables
    assert "100.00 (" in md  # accuracy with its interval
    training = data["training"]
    assert training["edgeclf"]["test_accuracy"] == 0.985 and training["edgeclf"]["wall_time_s"] == 330.0
    assert training["edgeclf"]["train_time_s"] == 300.0
    assert training["baseline"]["test_accuracy"] == 0.9739 and training["baseline"]["edgeclf_test_split_accuracy"] == 0.976
    assert "5 min 30 s" in md and "25 min 0 s" in md and "BASELINE" in md and "97.60" in md
    assert "Wall-time ratio edgeclf / baseline: 0.22x" in md
    assert md in capsys.readouterr().out
    suite.rerender(results / f"{stem}.json", ["baseline ran under a higher load"])
    md2 = (results / f"{stem}.md").read_text()
    assert "## Notes\n\n- baseline ran under a higher load" in md2
    assert md2.replace("## Notes\n\n- baseline ran under a higher load\n\n", "") == md


def test_baseline_scored_on_another_split_is_not_reported_as_ours(suite_run, tmp_path):
    record = baseline_record(tmp_path / "baseline.json", suite_run)
    data = json.loads(record.read_text())
    data["edgeclf_test_split"]["fingerprint"] = "0" * 64  # some other run's test split
    record.write_text(json.dumps(data))
    out = suite.baseline_training(record, run=False, data=tmp_path, weights=tmp_path, work=tmp_path / "w",
                                  run_dir=suite_run, log=lambda m: None)
    assert out["test_accuracy"] == 0.9739 and out["edgeclf_test_split_accuracy"] is None


def test_suite_without_training_comparison(suite_run, tmp_path):
    results = tmp_path / "results"
    assert suite.main([str(suite_run), "--sizes", "32", "--threads", "1", "--exports", "--runs", "3",
                       "--results", str(results), "--name", "pi", "--quiet", "--no-training"]) == 0
    md = next(results.glob("pi-*.md")).read_text()
    assert "(not measured in this run)" in md


def test_suite_bad_input_is_one_line(tmp_path, suite_run, capsys):
    assert suite.main([str(tmp_path), "--exports", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an edgeclf run directory" in err[0]
    assert suite.main([str(suite_run), "--sizes", "48", "--exports", "--quiet", "--no-training"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing" in err[0] and "export-48" in err[0]
    # A test image that went missing since training is named, not silently dropped.
    splits = json.loads((suite_run / "splits.json").read_text())
    Path(splits["root"], splits["splits"]["test"][0]["path"]).unlink()
    assert suite.main([str(suite_run), "--sizes", "32", "--exports", "--quiet", "--no-training"]) == 2
    assert "1 of 12 test images are missing" in capsys.readouterr().err


@pytest.mark.slow
def test_suite_exports_through_the_real_cli(tiny_run, tmp_path):
    """No --exports: the suite drives `edgeclf export RUN --all --image-size N --out ...` itself, then reuses it."""
    work, results = tmp_path / "work", tmp_path / "results"
    args = [str(tiny_run), "--sizes", "64", "--threads", "1", "--runs", "3", "--warmup", "1", "--work", str(work),
            "--results", str(results), "--name", "ci", "--quiet", "--no-training"]
    assert suite.main(args) == 0
    models = sorted(p.name for p in (work / "export-64").glob("*.tflite"))
    assert models == sorted(f"model_{f}.tflite" for f in suite.ALL_FORMATS)
    data = json.loads(next(results.glob("ci-*.json")).read_text())
    assert {r["input_size"][0] for b in data["bench"].values() for r in b["results"]} == {64}
    assert "64" in data["float_reference"]  # read from the export's own report.json
    stamp = (work / "export-64" / "model_int8.tflite").stat().st_mtime_ns
    assert suite.main(args) == 0  # second run reuses the complete export
    assert (work / "export-64" / "model_int8.tflite").stat().st_mtime_ns == stamp
