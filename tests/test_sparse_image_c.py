"""The C reader prototype (firmware/src/et_sparse_image.c) against the Python reader.

Usage: .venv/bin/python -m pytest tests/test_sparse_image_c.py

Compiles the reader and a small dump driver with -Wall -Wextra -Werror and
the address and undefined-behaviour sanitizers, then checks that iterating
every channel's non-zeros in C rebuilds exactly the tensors, biases and
requantization parameters the Python reader returns, and that corrupt images
are refused (or at worst decoded) without any memory error.
"""
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from entropi_tiny.export import sparse_format as fmt
from entropi_tiny.export.sparse_codecs import channel_major
from entropi_tiny.export.sparse_image import encode_model, encode_tensors, read_image

from keras_models import pruned_cnn_tflite
from test_sparse_image import SHAPES, random_spec, resign

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


@pytest.fixture(scope="module")
def dump_exe(tmp_path_factory):
    exe = tmp_path_factory.mktemp("c") / "et_sparse_image_dump"
    subprocess.run(["gcc", "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                    f"-I{ROOT / 'firmware/include'}", str(ROOT / "firmware/src/et_sparse_image.c"),
                    str(ROOT / "firmware/src/et_crc32.c"),
                    str(ROOT / "firmware/tests/et_sparse_image_dump.c"), "-o", str(exe)], check=True)
    return exe


def run_c(exe, image: bytes, tmp_path):
    (tmp_path / "img.bin").write_bytes(image)
    r = subprocess.run([str(exe), str(tmp_path / "img.bin"), str(tmp_path / "out.bin")],
                       capture_output=True, text=True)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r.returncode, (tmp_path / "out.bin").read_bytes() if r.returncode == 0 else b""


def parse_dump(raw: bytes) -> dict:
    out, pos = {}, 0
    while pos < len(raw):
        index, c, k, flags, live = struct.unpack_from("<5I", raw, pos)
        pos += 20
        entry = {"weights": np.frombuffer(raw, np.int8, c * k, pos).reshape(c, k)}
        pos += c * k
        entry["bias"] = np.frombuffer(raw, "<i4", live, pos)
        entry["multipliers"] = np.frombuffer(raw, "<i4", live, pos + 4 * live)
        entry["shifts"] = np.frombuffer(raw, "i1", live, pos + 8 * live)
        entry["constants"] = np.frombuffer(raw, "i1", c - live, pos + 9 * live)
        pos += 9 * live + c - live
        out[index] = entry
    return out


def assert_same(exe, image, tmp_path):
    rc, raw = run_c(exe, image, tmp_path)
    assert rc == 0
    got, want = parse_dump(raw), read_image(image)
    assert got.keys() == want.keys()
    for i, t in want.items():
        assert np.array_equal(got[i]["weights"], channel_major(t.weights, t.channel_axis))
        for name in ("bias", "multipliers", "shifts", "constants"):
            assert np.array_equal(got[i][name], getattr(t, name)), name


def test_c_reader_real_model(dump_exe, tmp_path):
    image, report = encode_model(pruned_cnn_tflite())
    assert len(set(r["encoding"] for r in report["tensors"])) == 5
    assert_same(dump_exe, image, tmp_path)


@pytest.mark.parametrize("encoding", list(fmt.ENCODING_NAMES))
def test_c_reader_each_encoding(dump_exe, tmp_path, encoding):
    specs = [random_spec(*SHAPES[name], d, seed=i, index=i)
             for i, (name, d) in enumerate([(n, d) for n in SHAPES for d in (1.0, 0.1, 0.01)])]
    if encoding == fmt.ZERO:
        specs = [random_spec(*SHAPES[name], 0.0, index=i) for i, name in enumerate(SHAPES)]
    assert_same(dump_exe, encode_tensors(specs, [encoding])[0], tmp_path)


def test_c_reader_long_gaps_wide_tables(dump_exe, tmp_path):
    w = np.zeros((40, 5000), np.int8)
    w[:, [0, 300, 4999]] = 5
    w[:, 1000:2800] = -7
    spec = random_spec((40, 5000), 0, fmt.OP_FULLY_CONNECTED, 0.0)
    spec.weights = w
    for encoding in (fmt.DELTA8, fmt.DELTA4, fmt.BITMASK):
        assert_same(dump_exe, encode_tensors([spec], [encoding])[0], tmp_path)


def test_c_reader_refuses_corrupt_images(dump_exe, tmp_path):
    image = encode_model(pruned_cnn_tflite())[0]
    flipped = bytearray(image)
    flipped[len(image) // 2] ^= 1
    cases = {15: bytes(flipped), 11: image[:-4], 12: b"XXXX" + image[4:],
             13: image[:4] + b"\x01\x00" + image[6:]}
    e = fmt.unpack_entry(image, fmt.HEADER_SIZE)
    e["positions_off" if e["positions_off"] else "values_off"] = len(image) + 64
    cases[16] = resign(image[:fmt.HEADER_SIZE] + fmt.pack_entry(e) + image[fmt.HEADER_SIZE + fmt.ENTRY_SIZE:])
    for code, bad in cases.items():
        assert run_c(dump_exe, bad, tmp_path)[0] == code


def test_c_reader_fuzz_memory_safe(dump_exe, tmp_path):
    image = encode_model(pruned_cnn_tflite())[0]
    rng = np.random.default_rng(0)
    for i in range(60):
        bad = bytearray(image)
        end = fmt.HEADER_SIZE + 6 * fmt.ENTRY_SIZE if i % 2 else len(bad)
        for pos in rng.integers(32, end, 2):
            bad[pos] = int(rng.integers(0, 256))
        rc, _ = run_c(dump_exe, resign(bytes(bad)), tmp_path)
        assert rc in (0, 3, 16, 17, 21)    # ok, malformed, ET_ERR_ENTRY, ET_ERR_WEIGHTS, ET_ERR_RANGE
