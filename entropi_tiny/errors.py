"""The one exception type that means "the user gave us something we cannot use".

Usage:
    raise UserError("data folder 'x' is empty")
    raise UserError(f"bad key {printable(key)}")     # control characters escaped

The CLI prints such an error as one line on stderr and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: printed as one line, exit status 2."""


def printable(text) -> str:
    """`text` for a one-line message: newlines, ANSI escapes and other control
    characters written as Python escapes (\\n, \\x1b), everything else kept, so a
    hostile file, key or tensor name cannot break or colour the line."""
    text = str(text)
    return text if text.isprintable() else repr(text)[1:-1]
