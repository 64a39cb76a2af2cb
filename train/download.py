"""``--data cats_vs_dogs``: the public cats_and_dogs_filtered.zip from the TensorFlow tutorials, fetched once.

The zip goes through Keras's download cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``), so it is
downloaded once and works offline afterwards. Extraction is ours rather than ``get_file(extract=True)`` so that it
can refuse, with a one-line error, any member that would land outside the target folder (absolute paths, ``..``,
symlinks), and so it is atomic: members are extracted to a temporary folder that is renamed into place when whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from edgeclf.errors import UsageError

DEFAULT_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
URL_ENV = "EDGECLF_CATS_DOGS_URL"
ARCHIVE = "cats_and_dogs_filtered.zip"
FOLDER = "cats_and_dogs_filtered"
BUILTIN_DATASETS = ("cats_vs_dogs",)


def dataset_url(url: str | None = None) -> str:
    """The option wins, then the environment variable, then the public URL."""
    return url or os.environ.get(URL_ENV) or DEFAULT_URL


def fetch_cats_vs_dogs(url: str | None = None, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the extracted ``cats_and_dogs_filtered`` folder, downloading and extracting it on first use."""
    import keras

    url = dataset_url(url)
    if cache_dir is None:
        from keras.src.backend.config import keras_home

        cache_dir = keras_home()
    datasets = Path(cache_dir).expanduser() / "datasets"
    target = datasets / FOLDER
    if (target / "train").is_dir():
        return target
    # Keras silently falls back to /tmp/.keras when the cache folder does not exist yet; make it first.
    datasets.mkdir(parents=True, exist_ok=True)
    try:
        archive = keras.utils.get_file(ARCHIVE, origin=url, cache_dir=str(cache_dir), cache_subdir="datasets")
    except Exception as exc:  # noqa: BLE001 - keras wraps URL/HTTP errors in plain Exception
        from .model import download_reason

        reason = download_reason(exc)
        raise UsageError(f"could not download {ARCHIVE} from {url} ({reason})",
                         f"offline? pass --data DIR with a local copy, or set {URL_ENV} / --data-url to a mirror"
                         ) from None
    return safe_extract(Path(archive), Path(archive).parent, expect=FOLDER)


def safe_extract(archive: Path, dest: Path, *, expect: str | None = None) -> Path:
    """Extract ``archive`` under ``dest`` refusing members that escape it; return ``dest/expect`` (or ``dest``)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        with contextlib.suppress(OSError):
            os.unlink(archive)  # a broken download must not poison the cache
        raise UsageError(f"{archive}: not a valid zip archive ({exc})", "it was removed; run again to re-download"
                         ) from None
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        with zf:
            for info in zf.infolist():
                _check_member(archive, info)
            for info in zf.infolist():
                zf.extract(info, staging)
        for entry in staging.iterdir():
            final = dest / entry.name
            if final.exists():
                shutil.rmtree(final) if final.is_dir() else final.unlink()
            os.replace(entry, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = dest / expect if expect else dest
    if expect and not result.is_dir():
        raise UsageError(f"{archive}: does not contain a {expect}/ folder", "check the --data-url mirror")
    return result


def _check_member(archive: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    mode = info.external_attr >> 16
    if name.startswith("/") or (parts and parts[0].endswith(":")) or ".." in parts:
        raise UsageError(f"{archive}: refusing to extract {info.filename!r}, which escapes the target folder",
                         "the archive is malicious or broken; delete it and use a trusted source")
    if stat.S_ISLNK(mode):
        raise UsageError(f"{archive}: refusing to extract symlink {info.filename!r}",
                         "the archive is malicious or broken; delete it and use a trusted source")

