"""User-facing errors: one line that names the file or option and the fix, and an exit code.

The CLI prints ``error: <message>`` (plus `` (<hint>)``) and exits with ``exit_code``; tracebacks only with --debug.
Exit code 2 is a usage error (bad option, bad path, refused overwrite), 1 is work that failed.
"""

from __future__ import annotations


class EdgeclfError(Exception):
    """Work failed for a reason the user can act on."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def os_error_reason(exc: OSError, path=None) -> tuple[str, str]:
    """(reason, fix) for a file that could not be read, by category: a permission problem is not a corrupt file."""
    import errno
    import os

    path = str(path if path is not None else exc.filename or "")
    if isinstance(exc, PermissionError):
        return "permission denied", "make it readable by this user (chmod/chown) or remove it"
    if exc.errno == errno.ELOOP:
        return "symlink loop", "point the link at a real file or remove it"
    if isinstance(exc, FileNotFoundError):
        if path and os.path.islink(path):
            return f"dangling symlink (to {os.readlink(path)})", "point the link at a real file or remove it"
        return "file not found", "check the path"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file", "pass the file inside it"
    return f"cannot read file ({exc.strerror or exc.__class__.__name__})", "check the disk and the file"


class UsageError(EdgeclfError):
    """The command line, a path or an input file is wrong; nothing was done."""

    exit_code = 2


class ImageError(EdgeclfError):
    """One image could not be used. Batch work skips, counts and lists these instead of stopping."""

    def __init__(self, path, reason: str, hint: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", hint)


class ModelError(UsageError):
    """A model file is missing, not a model, or lacks what edgeclf needs (labels, input contract)."""


class MissingDependencyError(UsageError):
    """An optional dependency is not installed; the message says which extra or package to install."""

    def __init__(self, feature: str, install: str):
        super().__init__(f"{feature} needs a package that is not installed", f"install it with: {install}")


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-blank line of an exception's message (its class name when empty), cut at ``limit`` characters:
    library errors (TensorFlow's MLIR dumps, Keras' download errors) are often pages long, our messages are one line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else exc.__class__.__name__)[:limit]
