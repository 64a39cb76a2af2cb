"""`edgeclf camera` end to end in real processes: a real video file (written with OpenCV from synthetic frames), an
image folder, headless JSON lines, Ctrl-C, a source that disappears, recording, and missing-dependency messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests.fixtures.images import synthetic_image
from tests.fixtures.signals import default_sigint
from tests.test_runtime_models import LABELS, model_copy, tiny_models  # noqa: F401

cv2 = pytest.importorskip("cv2", reason='OpenCV is the camera extra: pip install "edgeclf[camera]"')

FRAMES_PER_CLASS = 8


@pytest.fixture
def model(tiny_models, tmp_path):
    return model_copy(tiny_models, "int8", tmp_path / "model")


@pytest.fixture
def video(tmp_path):
    """An MJPEG .avi: 8 frames of red circles, then blue squares, then green circles (96x80)."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 80))
    assert writer.isOpened()
    for c in range(len(LABELS)):
        for i in range(FRAMES_PER_CLASS):
            rgb = np.asarray(synthetic_image(c, 700 + 10 * c + i, (96, 80)))
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "frames"
    root.mkdir()
    for i in range(6):
        synthetic_image(i % 3, 800 + i, (64, 48)).save(root / f"{i:02d}.jpg", quality=92)
    (root / "03b.jpg").write_bytes(b"broken")
    return root


def camera(*args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "edgeclf", "camera", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def json_lines(stdout: str) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in stdout.strip().splitlines()]
    assert "summary" in rows[-1]
    return rows[:-1], rows[-1]["summary"]


def test_video_file_headless_json_lines(model, video):
    proc = camera(model, "--source", video, "--headless", "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    frames, summary = json_lines(proc.stdout)
    assert [f["frame"] for f in frames] == list(range(1, 3 * FRAMES_PER_CLASS + 1))
    for f in frames:
        assert set(f) >= {"label", "score", "top_k", "latency_ms", "fps"}
        assert set(f["latency_ms"]) == {"capture", "preprocess", "inference"}
        assert all(v >= 0 for v in f["latency_ms"].values()) and f["latency_ms"]["inference"] > 0
        assert len(f["top_k"]) == 2 and 0 <= f["score"] <= 1
    expected = [LABELS[i // FRAMES_PER_CLASS] for i in range(len(frames))]
    agreement = np.mean([f["label"] == e for f, e in zip(frames, expected)])
    assert agreement >= 0.9, "BGR->RGB conversion or preprocessing is wrong"
    assert summary["frames"] == len(frames) and summary["stopped"] == "end-of-source"
    assert set(summary["stages"]) == {"capture", "preprocess", "inference"}
    assert frames[-1]["fps"] > 0
    assert "p90" in proc.stderr and "inference" in proc.stderr  # human summary table on stderr


def test_video_colours_really_are_converted_from_bgr(model, tmp_path):
    """A clip of pure-blue frames must be classified as the blue class, and pure red as red (a missed BGR->RGB
    conversion swaps exactly these)."""
    path = tmp_path / "rb.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 80))
    for c in (0, 1):  # red circle, blue square
        for i in range(4):
            writer.write(cv2.cvtColor(np.asarray(synthetic_image(c, 60 + i, (96, 80))), cv2.COLOR_RGB2BGR))
    writer.release()
    frames, _ = json_lines(camera(model, "--source", path, "--headless").stdout)
    assert [f["label"] for f in frames] == ["red"] * 4 + ["blue"] * 4


def test_image_folder_replay_matches_predict_and_reports_skipped(model, folder):
    proc = camera(model, "--source", folder, "--headless")
    assert proc.returncode == 0, proc.stderr
    frames, summary = json_lines(proc.stdout)
    assert len(frames) == 6
    predicted = subprocess.run([sys.executable, "-m", "edgeclf", "predict", str(model), str(folder), "--json"],
                               capture_output=True, text=True, timeout=120)
    by_predict = [json.loads(x) for x in predicted.stdout.splitlines()]
    good = [p for p in by_predict if "error" not in p]
    assert [f["label"] for f in frames] == [p["label"] for p in good]
    assert [f["score"] for f in frames] == [p["score"] for p in good]
    assert len(summary["skipped"]) == 1 and "03b.jpg" in summary["skipped"][0]


def test_max_frames_fps_limit_loop_and_threshold(model, folder):
    start = time.perf_counter()
    proc = camera(model, "--source", folder, "--headless", "--loop", "--max-frames", "10", "--fps-limit", "20",
                  "--threshold", "0.999", "--threads", "1")
    elapsed = time.perf_counter() - start
    frames, summary = json_lines(proc.stdout)
    assert len(frames) == 10 and summary["stopped"] == "max-frames"  # looped past the 6 images
    assert summary["seconds"] >= 9 / 20 * 0.9 and elapsed >= 0.45
    assert all(f["label"] == "unknown" or f["score"] >= 0.999 for f in frames)


def test_ctrl_c_stops_cleanly_with_a_summary(model, folder):
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(folder),
                             "--headless", "--loop", "--fps-limit", "20"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    lines = []
    for line in proc.stdout:  # wait until it is really classifying
        lines.append(line)
        if len(lines) >= 5:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines += out.splitlines(keepends=True)
    assert proc.returncode == 0, err
    summary = json.loads(lines[-1])["summary"]
    assert summary["stopped"] == "interrupted" and summary["frames"] >= 5
    assert "stopped: interrupted" in err and "Traceback" not in err
    assert summary["stages"]["inference"]["p50"] is not None


def test_source_that_disappears_gives_an_error_and_the_summary(model, tmp_path):
    root = tmp_path / "usb-stick"
    root.mkdir()
    for i in range(300):
        synthetic_image(i % 3, i, (32, 24)).save(root / f"{i:03d}.png")
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(root),
                             "--headless", "--fps-limit", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = proc.stdout.readline()
    assert json.loads(first)["frame"] == 1
    import shutil

    shutil.rmtree(root)  # the drive is pulled mid-run
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert summary["stopped"] == "source-error" and "disappeared" in summary["error"]
    assert "error:" in err and "disappeared" in err and "p90" in err and "Traceback" not in err


def test_record_writes_a_playable_annotated_video_and_refuses_to_clobber(model, video, tmp_path):
    out = tmp_path / "rec" / "annotated.avi"
    proc = camera(model, "--source", video, "--record", out, "--max-frames", "12", "-q")
    assert proc.returncode == 0, proc.stderr
    cap = cv2.VideoCapture(str(out))
    count, first = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        first = frame if first is None else first
        count += 1
    cap.release()
    assert count == 12
    assert first.shape[1] >= 480  # enlarged for a readable caption
    assert first[:10, :40].mean() < first[40:, 200:].mean() + 200  # sanity: a real image, not blank
    assert not list(out.parent.glob(".*partial*"))
    again = camera(model, "--source", video, "--record", out, "--max-frames", "2")
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr


@pytest.mark.parametrize("source, message", [
    ("7", "camera 7 could not be opened"),
    ("no/such/thing", "not found"),
])
def test_bad_sources_are_clear_errors(model, source, message):
    proc = camera(model, "--source", source, "--headless")
    assert proc.returncode in (1, 2) and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unreadable_video_file(model, tmp_path):
    (tmp_path / "fake.mp4").write_bytes(b"\x00" * 100)
    proc = camera(model, "--source", tmp_path / "fake.mp4", "--headless")
    assert proc.returncode == 1 and "OpenCV cannot read this video file" in proc.stderr


def test_missing_picamera2_says_which_package(model):
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here")
    proc = camera(model, "--source", "picamera", "--headless")
    assert proc.returncode == 2
    assert "sudo apt install python3-picamera2" in proc.stderr and "--system-site-packages" in proc.stderr


def test_missing_opencv_says_which_extra(model, video):
    code = textwrap.dedent("""
        import sys
        sys.modules["cv2"] = None
        from edgeclf.cli import main
        sys.argv = ["edgeclf", "camera", sys.argv[1], "--source", sys.argv[2], "--headless"]
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(model), str(video)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert 'pip install "edgeclf[camera]"' in proc.stderr and "video file" in proc.stderr


def test_display_without_a_gui_build_names_the_fix(model, folder):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = camera(model, "--source", folder, "--display", "--max-frames", "2", env=env)
    if proc.returncode == 0:
        pytest.skip("this OpenCV build opened a window")
    assert proc.returncode == 2 and "--display" in proc.stderr and "--serve" in proc.stderr
