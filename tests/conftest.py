"""Shared test fixtures.

Usage: pytest (from the repository root)

torch and torchvision are imported before anything can import TensorFlow:
the other order segfaults (two LLVM copies, see DESIGN.md section 3).
"""
import sys

import torch  # noqa: F401  (import order matters, see above)
import torchvision  # noqa: F401

sys.modules.setdefault("triton", None)
