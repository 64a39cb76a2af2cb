"""--data cats_vs_dogs: a real HTTP download (loopback server) through Keras's cache, and extraction that refuses
paths escaping the target folder."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from edgeclf.errors import UsageError
from edgeclf.train.download import ARCHIVE, URL_ENV, dataset_url, fetch_cats_vs_dogs, safe_extract
from tests.fixtures.images import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server over tmp_path/www; yields (www folder, base URL, request log)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def zip_folder(folder: Path, archive: Path, arcroot: str) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{arcroot}/{path.relative_to(folder).as_posix()}")
    return archive


@pytest.fixture
def cats_dogs_zip(tmp_path, served):
    www, base, requests = served
    data = make_dataset(tmp_path / "src", per_class=6, layout="split")
    zip_folder(data, www / ARCHIVE, "cats_and_dogs_filtered")
    return f"{base}/{ARCHIVE}", requests


def test_download_extracts_into_keras_cache_and_is_fetched_only_once(tmp_path, cats_dogs_zip):
    url, requests = cats_dogs_zip
    home = tmp_path / "keras_home"
    root = fetch_cats_vs_dogs(url, cache_dir=home)
    assert root == home / "datasets" / "cats_and_dogs_filtered"
    assert len(list((root / "train" / "cats").glob("*.jpg"))) == 6
    assert len(list((root / "validation" / "dogs").glob("*.jpg"))) == 3
    assert (home / "datasets" / ARCHIVE).is_file()
    assert requests == [f"/{ARCHIVE}"]
    # Second use: no request (works offline) even with an unreachable URL.
    assert fetch_cats_vs_dogs("http://127.0.0.1:9/nothing.zip", cache_dir=home) == root
    assert requests == [f"/{ARCHIVE}"]


def test_environment_variable_overrides_the_url(tmp_path, cats_dogs_zip, monkeypatch):
    url, requests = cats_dogs_zip
    monkeypatch.setenv(URL_ENV, url)
    assert dataset_url() == url and dataset_url("http://option/wins.zip") == "http://option/wins.zip"
    fetch_cats_vs_dogs(cache_dir=tmp_path / "home")
    assert requests == [f"/{ARCHIVE}"]


def test_unreachable_url_says_how_to_work_offline(tmp_path):
    with pytest.raises(UsageError) as info:
        fetch_cats_vs_dogs("http://127.0.0.1:9/cats_and_dogs_filtered.zip", cache_dir=tmp_path)
    message = str(info.value)
    assert "could not download" in message and "--data DIR" in message and URL_ENV in message
    assert "\n" not in message


def test_a_broken_download_is_removed_from_the_cache(tmp_path, served):
    www, base, _ = served
    (www / ARCHIVE).write_text("<html>captive portal</html>")
    with pytest.raises(UsageError, match="not a valid zip"):
        fetch_cats_vs_dogs(f"{base}/{ARCHIVE}", cache_dir=tmp_path / "home")
    assert not (tmp_path / "home" / "datasets" / ARCHIVE).exists()


@pytest.mark.parametrize("member", ["../evil.txt", "cats_and_dogs_filtered/../../evil.txt", "/tmp/evil.txt",
                                    "C:/evil.txt"])
def test_extraction_refuses_paths_escaping_the_target(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("cats_and_dogs_filtered/train/cats/ok.txt", "fine")
        zf.writestr(member, "pwned")
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(UsageError, match="refusing to extract") as info:
        safe_extract(archive, dest)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.rglob("evil.txt")) and not Path("/tmp/evil.txt").exists()
    assert not (dest / "cats_and_dogs_filtered").exists()  # nothing half-extracted


def test_extraction_refuses_symlinks(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("cats_and_dogs_filtered/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UsageError, match="symlink"):
        safe_extract(archive, tmp_path / "dest")


def test_cli_default_data_downloads_and_trains(tmp_path, cats_dogs_zip):
    """`edgeclf train` with the default --data, the URL from the environment and a fresh KERAS_HOME."""
    url, requests = cats_dogs_zip
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "home"), URL_ENV: url, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "edgeclf", "train", "--weights", "none", "--alpha", "0.35",
                           "--image-size", "64", "--epochs", "1", "--fine-tune-epochs", "0", "--out", str(out),
                           "--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["counts"] == {"train": 12, "validation": 2, "test": 4}
    manifest = json.loads((out / "edgeclf.json").read_text())
    assert manifest["dataset"]["source"] == "cats_vs_dogs" and manifest["dataset"]["url"] == url
    assert manifest["dataset"]["root"] == str(tmp_path / "home" / "datasets" / "cats_and_dogs_filtered")
    assert requests == [f"/{ARCHIVE}"]
