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
        where = f"{printable(file)}:{line}" if line else printable(file)
        super().__init__(f"{where}: {printable(message)}")


class RulePackError(UsageError):
    """A rule pack that fails to load; names the pack."""


def printable(text: str) -> str:
    r"""`text` safe to show on one line, its control characters and lone surrogates escaped.

    Newlines, line separators, escapes and a file name's undecodable bytes become `\n`, `\x1b`,
    `\udcff`.

    A file name may hold any byte but `/` and NUL, so a name with a newline would otherwise
    split an error in two and let its second line be forged; every message that names a file or
    an object goes through here.
    """
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable() and not 0xD800 <= ord(char) <= 0xDFFF:
            out.append(char)
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)
