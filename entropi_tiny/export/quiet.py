"""Keep TensorFlow's (and its runtimes') log lines off the user's terminal.

Usage:
    tf = import_quietly("tensorflow")          # instead of `import tensorflow as tf`
    with quiet_fd2():                          # C++ chatter of one call, kept on failure
        data = converter.convert()

TF_CPP_MIN_LOG_LEVEL (set in export/__init__.py, before anything can import
TensorFlow) is not enough: TensorFlow, LiteRT and TFLM each carry their own
absl, which prints "All log messages before absl::InitializeLog() ..." and an
oneDNN notice on fd 2 whatever that variable says, and absl-py logs Python
warnings to stderr (the converter also warns through Python's warnings, e.g.
"Statistics for quantized inputs were expected"). So the first import of
each goes through import_quietly, and the conversion through quiet_fd2:
fd 2 points at a temporary file while it runs (its text is written out only
if the import fails), and absl-py's logger is set to errors only. A command
that then fails prints its one `error:` line and nothing before it.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import tempfile
import warnings
from types import ModuleType


@contextlib.contextmanager
def quiet_fd2():
    """Silence C++ log lines on fd 2, and Python warnings, for the duration (the
    fd 2 text is written out if it raises)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(log.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if not ok:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace")[-4000:])


def import_quietly(name: str) -> ModuleType:
    """importlib.import_module(name) with its start-up log lines dropped."""
    if name in sys.modules:
        return sys.modules[name]
    with quiet_fd2():
        module = importlib.import_module(name)
    quiet_absl()
    return module


def quiet_absl() -> None:
    """absl-py's Python logger (used by TF's converter) to errors only."""
    logging.getLogger("absl").setLevel(logging.ERROR)
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.set_verbosity(absl_logging.ERROR)
