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
