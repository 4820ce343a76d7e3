"""Embedded samples: the generated C tables hold exactly the int8 images and labels."""
import subprocess

import numpy as np
import pytest

from entropi_tiny.codegen.samples import generate_sample_sources, pick_balanced
from entropi_tiny.errors import UserError

DRIVER = r"""
#include <stdio.h>
#include "et_samples.h"
int main(void) {
    long sum = 0;
    for (unsigned i = 0; i < ET_SAMPLES_TRAIN; i++)
        for (unsigned j = 0; j < ET_SAMPLE_BYTES; j++) sum += (long)(j + 1) * et_samples_train_images[i][j];
    for (unsigned i = 0; i < ET_SAMPLES_TEST; i++) sum += 7L * et_samples_test_labels[i];
    printf("%ld %d\n", sum, (int)et_samples_test_images[ET_SAMPLES_TEST - 1][ET_SAMPLE_BYTES - 1]);
    return 0;
}
"""


def test_generated_tables_compile_and_hold_the_data(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(-128, 128, (6, 4, 4, 3), dtype=np.int8)
    test = rng.integers(-128, 128, (3, 4, 4, 3), dtype=np.int8)
    train_y, test_y = np.array([0, 1, 2, 0, 1, 2]), np.array([2, 1, 0])
    report = generate_sample_sources(tmp_path, train, train_y, test, test_y, "ab" * 32)
    assert report["train"] == 6 and report["test"] == 3
    (tmp_path / "main.c").write_text(DRIVER)
    exe = tmp_path / "a.out"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(tmp_path / "main.c"), str(tmp_path / "et_samples.c"), "-I", str(tmp_path)],
                   check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    flat = train.reshape(6, -1).astype(np.int64)
    expect = int((flat * np.arange(1, flat.shape[1] + 1)).sum() + 7 * test_y.sum())
    assert int(out[0]) == expect and int(out[1]) == int(test[-1].ravel()[-1])
    assert "inputs sha256" in (tmp_path / "et_samples.c").read_text()


def test_pick_balanced_interleaves_classes():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert pick_balanced(labels, 2).tolist() == [0, 3, 5, 1, 4, 6]


def test_bad_samples_are_refused(tmp_path):
    with pytest.raises(UserError):
        generate_sample_sources(tmp_path, np.zeros((2, 4, 4, 3), np.float32), np.zeros(2),
                                np.zeros((1, 4, 4, 3), np.int8), np.zeros(1), "x")
    assert not list(tmp_path.iterdir())
