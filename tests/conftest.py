"""Shared test fixtures.

Usage: pytest (from the repository root)

torch and torchvision are imported before anything can import TensorFlow:
the other order segfaults (two LLVM copies, see DESIGN.md section 3).
"""
import sys

import torch  # noqa: F401  (import order matters, see above)
import torchvision  # noqa: F401

sys.modules.setdefault("triton", None)


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real 3-level pruning run on the built-in data (helpers.TINY), made once."""
    from helpers import TINY, run_cli

    root = tmp_path_factory.mktemp("tiny_run")
    r = run_cli("prune", "--quiet", "--run-dir", str(root), *TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    return root


@pytest.fixture(scope="session")
def objs(tmp_path_factory):
    """The C runtime compiled once for the host (plain build)."""
    from runtime_harness import runtime_objects

    return runtime_objects(tmp_path_factory.mktemp("obj"))


@pytest.fixture(scope="session")
def asan_objs(tmp_path_factory):
    """The C runtime compiled once with AddressSanitizer and UBSan."""
    from runtime_harness import runtime_objects

    return runtime_objects(tmp_path_factory.mktemp("obj_asan"), sanitize=True)
