"""`edgeclf camera --serve`: the page, /label and the MJPEG stream fetched over loopback from a real process, and the
page driven in headless Chromium (a frame and a label must appear)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from PIL import Image

from edgeclf.errors import UsageError
from edgeclf.runtime.serve import BOUNDARY, parse_bind
from tests.fixtures.images import synthetic_image
from tests.test_runtime_models import LABELS, SIZE, model_copy, tiny_models  # noqa: F401


@pytest.fixture
def served(tiny_models, tmp_path):
    """A running `edgeclf camera --serve 127.0.0.1:0` replaying a folder in a loop; yields its base URL."""
    model = model_copy(tiny_models, "int8", tmp_path / "model")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(6):
        synthetic_image(i % 3, 300 + i, (64, 48)).save(frames / f"{i}.png")
    proc = subprocess.Popen([sys.executable, "-m", "edgeclf", "camera", str(model), "--source", str(frames),
                             "--loop", "--fps-limit", "15", "--max-frames", "3000", "--serve", "127.0.0.1:0",
                             "--top-k", "3", "--threshold", "0.4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = None
    deadline = time.time() + 60
    while time.time() < deadline and url is None:
        line = proc.stderr.readline()
        if not line:
            break
        match = re.search(r"serving the live feed at (http://\S+)", line)
        if match:
            url = match.group(1)
    try:
        assert url, "the server never announced its address"
        assert url.startswith("http://127.0.0.1:")  # bound to loopback
        yield url
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, err  # SIGTERM is a clean stop with a summary
        assert "stopped: interrupted" in err


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def test_page_label_frame_and_mjpeg_stream_over_loopback(served):
    status, ctype, page = get(served)
    assert status == 200 and ctype.startswith("text/html")
    assert b'src="stream.mjpg"' in page and b'fetch("label"' in page

    deadline = time.time() + 20
    info = {}
    while time.time() < deadline and "label" not in info:
        info = json.loads(get(served + "label")[2])
        time.sleep(0.1)
    assert info["label"] in LABELS + ["unknown"] and 0 <= info["score"] <= 1
    assert set(info["latency_ms"]) == {"capture", "preprocess", "inference", "encode"} and info["frame"] >= 1
    assert [p["label"] for p in info["top_k"]] and len(info["top_k"]) == 3 and info["threshold"] == 0.4
    assert info["display_size"] == [64, 48] and info["input_size"] == list(SIZE)

    status, ctype, jpeg = get(served + "frame.jpg")
    assert status == 200 and ctype == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg)).size == (64, 48)  # the photo as it is, not the 24x20 model input
    assert json.loads(get(served + "label")[2])["latency_ms"]["encode"] > 0  # measured on the encoder thread

    with urllib.request.urlopen(served + "stream.mjpg", timeout=10) as r:
        assert r.headers.get("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        parts = []
        buf = b""
        while len(parts) < 2:
            buf += r.read1(65536)
            while True:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                headers = buf[:head_end].decode("ascii")
                assert headers.startswith(f"--{BOUNDARY}") and "Content-Type: image/jpeg" in headers
                length = int(re.search(r"Content-Length: (\d+)", headers).group(1))
                if len(buf) < head_end + 4 + length + 2:
                    break
                parts.append(buf[head_end + 4: head_end + 4 + length])
                buf = buf[head_end + 4 + length + 2:]
    for part in parts:
        img = Image.open(io.BytesIO(part))
        img.load()
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (64, 48)
    later = json.loads(get(served + "label")[2])
    assert later["frame"] > info["frame"]  # the feed is live


def test_unknown_path_is_404(served):
    with pytest.raises(urllib.error.HTTPError) as info:
        get(served + "secret")
    assert info.value.code == 404


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_page_shows_the_frame_top_k_bars_and_latency_in_headless_chromium(served, tmp_path):
    browser = find_chromium()
    if browser is None:
        message = "chromium is not installed (apt-get install -y chromium; scripts/setup-dev.sh does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    dom, seen = "", {}
    for _ in range(3):  # the first run of a fresh profile can be slow; the DOM must show everything within a few tries
        proc = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=4000", "--dump-dom", served],
            capture_output=True, text=True, timeout=120)
        dom = proc.stdout
        seen = read_page(dom)
        if seen["width"] and seen["bars"] and seen["latency"].get("encode") and seen["chart"] > 1:
            break
    else:
        pytest.fail(f"the page DOM lacks the frame, bars, latency or chart: {seen}\n{dom[-2000:]}")
    assert seen["width"] > SIZE[0] and seen["height"] > SIZE[1]  # the browser decoded the display frame, not the input
    assert (seen["width"], seen["height"]) == (64, 48)
    assert len(seen["bars"]) == 3 and {label for label, _ in seen["bars"]} == set(LABELS)
    scores = [score for _, score in seen["bars"]]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 0.02
    assert set(seen["latency"]) == {"capture", "preprocess", "inference", "encode"}
    assert all(ms > 0 for ms in seen["latency"].values())
    assert re.fullmatch(r"\S+ \d+%", seen["label"]) and "threshold: 0.4" in dom and seen["fps"] > 0


def read_page(dom: str) -> dict:
    """What a person would read off the page: frame size, label, top-k bars, latency per stage, FPS, chart."""
    size = re.search(r'id="frame" data-width="(\d+)" data-height="(\d+)"', dom)
    label = re.search(r'<div id="label"[^>]*>([^<]*)</div>', dom)
    bars = re.findall(r'class="bar[^"]*" data-label="([^"]+)" data-score="([0-9.e-]+)"', dom)
    latency = dict((stage, float(ms)) for stage, ms in
                   re.findall(r'id="lat-(\w+)" data-ms="([0-9.]+)"', dom))
    fps = re.search(r'<td id="fps">([0-9.]+)</td>', dom)
    chart = re.search(r'id="chart"[^>]*data-samples="(\d+)"', dom)
    return {"width": int(size.group(1)) if size else 0, "height": int(size.group(2)) if size else 0,
            "label": label.group(1) if label else "", "bars": [(lb, float(sc)) for lb, sc in bars],
            "latency": latency, "fps": float(fps.group(1)) if fps else 0.0,
            "chart": int(chart.group(1)) if chart else 0}


@pytest.mark.parametrize("value, expected", [
    ("8080", ("127.0.0.1", 8080)), (":8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("localhost:0", ("localhost", 0)), ("[::1]:9000", ("::1", 9000)),
])
def test_bind_addresses_default_to_localhost(value, expected):
    assert parse_bind(value) == expected


@pytest.mark.parametrize("value", ["host:", "1.2.3.4:99999", "abc"])
def test_bad_bind_address(value):
    with pytest.raises(UsageError, match="--serve"):
        parse_bind(value)
