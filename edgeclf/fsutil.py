"""Writing artifacts so that nothing a user made is lost: temp name + rename, and no clobbering without --force."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UsageError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync, then rename over it: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; artifacts get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))  # non-UTF-8 file names stay lossless


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a library that insists on writing to a filename itself
    (``model.save``, ``savefig``); it is renamed into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def refuse_clobber(path: str | os.PathLike, force: bool, what: str = "output", option: str | None = None) -> None:
    """Raise a usage error if ``path`` exists and --force was not given; the hint names ``option`` (default: the
    option ``what`` starts with, e.g. "--record file", else --out)."""
    path = Path(path)
    option = option or (what.split()[0] if what.startswith("--") else "--out")
    if path.exists() and not force:
        raise UsageError(f"{what} {path} already exists", f"pass --force to replace it, or choose another {option}")


def replace_dir(staging: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move a finished staging directory to ``final``, replacing an existing one only after the new one is whole."""
    staging, final = Path(staging), Path(final)
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    return final


def staging_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new hidden work folder ``<prefix><pid>-XXXX`` in ``parent``. Folders of earlier runs that died without
    cleaning up (``kill -9``: their process is gone) are removed first, so they never pile up."""
    parent = Path(parent)
    for old in parent.glob(f"{prefix}*"):
        owner = old.name[len(prefix):].split("-")[0]
        if old.is_dir() and not (owner.isdigit() and _alive(int(owner))):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def check_writable_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create ``path`` if needed and prove we can write there, before hours of work are spent."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".edgeclf-write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write to {path}: {exc.strerror or exc}", f"choose a writable {option}") from None
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def publish_staged(staging: Path, out: Path, names) -> None:
    """Move each of ``names`` from ``staging`` into ``out``. A name this run did not produce (an optional output,
    such as a picture of something that did not happen) is removed from ``out``: what is there afterwards is
    exactly this run's output, never a stale file from an earlier ``--force`` run beside it."""
    for name in names:
        if (Path(staging) / name).exists():
            os.replace(Path(staging) / name, Path(out) / name)
        elif (Path(out) / name).exists():
            os.unlink(Path(out) / name)
