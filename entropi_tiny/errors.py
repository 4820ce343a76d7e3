"""The one exception type that means "the user gave us something we cannot use".

Usage:
    raise UserError("data folder 'x' is empty")

The CLI prints such an error as one line on stderr and exits with status 2;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: printed as one line, exit status 2."""
