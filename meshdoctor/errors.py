"""Errors that reach the user as one line and exit code 2."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input, a missing path, an unreachable cluster: said in one line, exit code 2.

    The message must name the file (and line) or the object at fault.
    """


class InputError(UsageError):
    """A file that cannot be read as Kubernetes objects."""

    def __init__(self, file: str, message: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


class RulePackError(UsageError):
    """A rule pack that fails to load; names the pack."""
