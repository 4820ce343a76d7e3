"""Regression tests: crafted weight images with a valid CRC never reach memory or arithmetic they should not.

Usage: .venv/bin/python -m pytest tests/test_image_hardening.py

Images come from the real writer (encode_tensors) for the three tensors of
firmware/fuzz/fuzz_image.c's schedule (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED), are damaged field by field and re-signed (CRC
recomputed, so the checksum cannot hide a bounds bug), and are run through
that fuzz target compiled with gcc -fsanitize=address,undefined and a
replay main: open + walk every channel, runtime init, one invoke. Each case
of issues 16/17 is here: a bias near INT32_MAX/INT32_MIN, a wrong channel
axis on a self-consistent DENSE entry, a live bitmap offset without
ET_HAS_DEAD (pointing at zero bits, or at the end of the image), a present
offset for any absent section, the dump tool on such images, and the
writer and Python reader refusing the same tensors in one line. A seeded
mutation campaign (valid CRCs) closes the file.
"""
import dataclasses
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from entropi_tiny.errors import UserError
from entropi_tiny.export import sparse_format as fmt
from entropi_tiny.export.sparse_codecs import channel_major
from entropi_tiny.export.sparse_image import Requant, WeightSpec, encode_tensors, read_image, specs_from_tflite
from entropi_tiny.export.tflite_model import Quantization, read_tflite

from keras_models import pruned_cnn_tflite

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware/fuzz"))
from fuzz_targets import RUNTIME  # noqa: E402  (the runtime's sources, one list)

SANITIZE = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all", f"-I{ROOT / 'firmware/include'}", f"-I{ROOT / 'firmware/src'}"]
INT32_MAX = 2**31 - 1
REQUANT = Requant(0.02, 0.05, -3, 7, -128, 127)
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


def compile_c(out: Path, *sources) -> Path:
    subprocess.run(["gcc", *SANITIZE, *map(str, sources), "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    """fuzz_image.c + replay_main.c under ASan/UBSan: prints open/init/invoke per file."""
    return compile_c(tmp_path_factory.mktemp("c") / "replay", ROOT / "firmware/fuzz/fuzz_image.c",
                     ROOT / "firmware/fuzz/replay_main.c", *(ROOT / s for s in RUNTIME))


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return compile_c(tmp_path_factory.mktemp("c") / "dump", ROOT / "firmware/src/et_sparse_image.c",
                     ROOT / "firmware/src/et_crc32.c", ROOT / "firmware/tests/et_sparse_image_dump.c")


def specs(density=1.0, dead=False, seed=0):
    """The schedule's three weight tensors (all channels live unless dead)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (shape, axis, op) in enumerate((((8, 3, 3, 4), 0, fmt.OP_CONV_2D),
                                           ((1, 3, 3, 8), 3, fmt.OP_DEPTHWISE_CONV_2D),
                                           ((10, 8), 0, fmt.OP_FULLY_CONNECTED))):
        w = (rng.integers(1, 128, shape) * rng.choice([-1, 1], shape) * (rng.random(shape) < density))
        w = w.astype(np.int8)
        np.moveaxis(w, axis, 0).reshape(shape[axis], -1)[:, 0] = 5      # every channel live
        if dead:
            np.moveaxis(w, axis, 0)[1] = 0
        c = shape[axis]
        out.append(WeightSpec(tensor_index=i, weights=w, channel_axis=axis, op=op, requant=REQUANT,
                              scales=np.full(c, 0.01, np.float32), zero_points=np.zeros(c, np.int64),
                              bias=rng.integers(-1000, 1000, c).astype(np.int32), bias_index=10 + i))
    return out


def resign(image: bytes) -> bytes:
    return image[:24] + struct.pack("<I", fmt.crc32(image[32:])) + image[28:]


def entry(image: bytes, i: int) -> dict:
    return fmt.unpack_entry(image, fmt.HEADER_SIZE + fmt.ENTRY_SIZE * i)


def with_entry(image: bytes, i: int, **fields) -> bytes:
    e = entry(image, i) | fields
    at = fmt.HEADER_SIZE + fmt.ENTRY_SIZE * i
    return resign(image[:at] + fmt.pack_entry(e) + image[at + fmt.ENTRY_SIZE:])


def poke(image: bytes, offset: int, value: bytes) -> bytes:
    return resign(image[:offset] + value + image[offset + len(value):])


def run_replay(exe: Path, images: list[bytes], tmp_path: Path) -> list[dict]:
    """One process over every image; a sanitizer report fails the test with its text."""
    paths = []
    for k, data in enumerate(images):
        paths.append(tmp_path / f"case_{k:05d}.etsw")
        paths[-1].write_bytes(data)
    r = subprocess.run([str(exe), *map(str, paths)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-4000:]
    lines = r.stdout.splitlines()
    assert len(lines) == len(images)
    return [dict(kv.split("=") for kv in line.split(": ", 1)[1].split("; ")) for line in lines]


def test_writer_images_pass_every_check(replay, tmp_path):
    images = [encode_tensors(specs(d, dead, seed=s), [enc])[0]
              for s, (d, dead) in enumerate([(1.0, False), (0.3, True), (0.05, True)])
              for enc in (fmt.DENSE, fmt.BITMASK, fmt.DELTA8, fmt.DELTA4)]
    assert all(r == {"open": "ok", "init": "ok", "invoke": "ok"} for r in run_replay(replay, images, tmp_path))


def test_bias_near_int32_limits_is_refused_at_init_and_the_edge_runs(replay, tmp_path):
    """(a) acc = bias + sum w*x overflowed in et_kernels_conv.c; now |bias| + 128 sum|w| <= INT32_MAX is proven."""
    sp = specs()
    image = encode_tensors(sp)[0]
    e = entry(image, 0)
    assert e["encoding"] == fmt.DENSE and not e["flags"] & fmt.HAS_DEAD
    sum_abs = int(np.abs(channel_major(sp[0].weights, 0)[0].astype(np.int64)).sum())
    edge = INT32_MAX - 128 * sum_abs
    cases = [poke(image, e["bias_off"], struct.pack("<i", b)) for b in (edge, -edge, edge + 1, -edge - 1,
                                                                         INT32_MAX, -2**31)]
    got = run_replay(replay, cases, tmp_path)
    assert got[:2] == [{"open": "ok", "init": "ok", "invoke": "ok"}] * 2       # the bound is exact, no UB at it
    assert all(g["open"] == g["init"] == "accumulator range" for g in got[2:]), got
    for bad in cases[2:]:
        with pytest.raises(UserError, match="overflow the int32 accumulator"):
            read_image(bad)


def test_requantization_that_could_overflow_is_refused(replay, tmp_path):
    image = encode_tensors(specs())[0]
    e = entry(image, 2)
    cases = [poke(image, e["multiplier_off"], struct.pack("<i", -5)),                    # negative multiplier
             poke(poke(image, e["multiplier_off"], struct.pack("<i", INT32_MAX)),       # m ~ 1.0 and a left
                  e["shift_off"], struct.pack("<b", 30))]                              # shift of the bound
    assert [g["init"] for g in run_replay(replay, cases, tmp_path)] == ["accumulator range"] * 2


def test_writer_refuses_an_accumulator_that_could_overflow():
    sp = specs()
    sp[2].weights = np.full((10, 8), 127, np.int8)                     # 128 x sum|w| = 130048
    sp[2].bias = np.full(10, INT32_MAX - 10000, np.int32)              # folded in range, the sum is not
    with pytest.raises(UserError, match="tensor 2 .*live channel 0.*overflow the int32 accumulator") as e:
        encode_tensors(sp)
    assert "\n" not in str(e.value)


def axis_cases(image: bytes) -> dict[str, bytes]:
    """Self-consistent DENSE entries whose channel axis is not the one the op's kernel indexes."""
    return {"conv_axis3": with_entry(image, 0, channel_axis=3, channels=4, live_channels=4, channel_len=72),
            "dw_axis0": with_entry(image, 1, channel_axis=0, channels=1, live_channels=1, channel_len=72),
            "fc_axis1": with_entry(image, 2, channel_axis=1, channels=8, live_channels=8, channel_len=10)}


def test_channel_axis_must_be_the_ops(replay, dump, tmp_path):
    """(b)/(c) a wrong axis passed init and the conv kernel loaded through a NULL constants pointer."""
    image = encode_tensors(specs(), [fmt.DENSE])[0]
    cases = axis_cases(image)
    got = run_replay(replay, list(cases.values()), tmp_path)
    assert all(g["open"] == "image entry" for g in got), got
    for name, bad in cases.items():
        with pytest.raises(UserError, match="not the output-channel axis"):
            read_image(bad)
        (tmp_path / f"{name}.etsw").write_bytes(bad)
        r = subprocess.run([str(dump), str(tmp_path / f"{name}.etsw"), str(tmp_path / "out.bin")],
                           capture_output=True, text=True)
        assert r.returncode == 10 + 6 and "Sanitizer" not in r.stderr, r.stderr


def test_writer_refuses_a_conv_quantized_along_axis_3():
    """(c) the writer encoded a CONV_2D whose quantized_dimension is 3 into a wrongly ordered image."""
    sp = specs()
    sp[0].channel_axis = 3
    sp[0].scales = np.full(4, 0.01, np.float32)
    sp[0].zero_points = np.zeros(4, np.int64)
    sp[0].bias = np.zeros(4, np.int32)
    with pytest.raises(UserError, match="channel axis 3 is not the output-channel axis 0 .*CONV_2D"):
        encode_tensors(sp)


def test_writer_refuses_a_tflite_conv_with_quantized_dimension_3():
    """(c) the same through the .tflite path: the axis comes from the tensor's quantized_dimension."""
    model = read_tflite(pruned_cnn_tflite())
    op = next(o for o in model.operators if o.opcode == "CONV_2D")
    w = model.tensors[op.inputs[1]]
    q = Quantization(np.full(w.shape[3], 0.01, np.float32), np.zeros(w.shape[3], np.int64), 3)
    model.tensors[w.index] = dataclasses.replace(w, quantization=q)
    with pytest.raises(UserError, match=f"tensor {w.index} .*channel axis 3 is not the output-channel axis 0"):
        encode_tensors(specs_from_tflite(model))


def stray_section_cases(image: bytes) -> dict[str, bytes]:
    """Every absent section of every entry given a present-looking offset (the class of 'bitmap without flag')."""
    cases = {}
    zero_bits = fmt.HEADER_SIZE + fmt.ENTRY_SIZE * 2 + 28          # FC entry's shape3 field: four zero bytes
    assert image[zero_bits:zero_bits + 4] == bytes(4)
    for i in range(3):
        e = entry(image, i)
        for name in fmt.SECTION_FIELDS:
            if e[name] == 0:
                for where, off in (("zero_bits", zero_bits), ("image_end", len(image)), ("header", 32)):
                    cases[f"{i}_{name}_{where}"] = with_entry(image, i, **{name: off})
    return cases


def test_a_present_offset_of_an_absent_section_is_refused(replay, dump, tmp_path):
    """(b)/(d) live_off without ET_HAS_DEAD: all-dead bitmap -> NULL constants; at the end -> heap overflow."""
    image = encode_tensors(specs(), [fmt.DENSE])[0]
    cases = stray_section_cases(image)
    assert {"0_live_off_zero_bits", "0_live_off_image_end", "2_const_off_header"} <= cases.keys()
    assert all(g["open"] == "image entry" for g in run_replay(replay, list(cases.values()), tmp_path))
    for name in ("0_live_off_zero_bits", "0_live_off_image_end", "1_index_off_image_end"):
        (tmp_path / "bad.etsw").write_bytes(cases[name])
        r = subprocess.run([str(dump), str(tmp_path / "bad.etsw"), str(tmp_path / "out.bin")],
                           capture_output=True, text=True)
        assert r.returncode == 10 + 6 and "Sanitizer" not in r.stderr, (name, r.stderr)


def mutations(images: list[bytes], n: int, seed: int = 0):
    """n damaged copies, CRC recomputed: byte sets, bit flips and entry fields set to edge values."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        base = images[k % len(images)]
        bad = bytearray(base)
        edges = [0, 1, 2, 4, 7, 8, 0xFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, len(base), len(base) - 4]
        mode, which = k % 3, int(rng.integers(0, 3))
        for _ in range(1 + int(rng.integers(0, 3))):
            if mode == 0:                                             # a byte anywhere behind the header
                bad[int(rng.integers(32, len(bad)))] = int(rng.integers(0, 256))
            elif mode == 1:                                           # a bit in the directory
                pos = int(rng.integers(32, 32 + fmt.ENTRY_SIZE * 3))
                bad[pos] ^= 1 << int(rng.integers(0, 8))
            else:                                                     # a u32 field set to an edge value
                at = 32 + fmt.ENTRY_SIZE * which + 4 * int(rng.integers(0, fmt.ENTRY_SIZE // 4))
                bad[at:at + 4] = struct.pack("<I", edges[int(rng.integers(0, len(edges)))])
        yield resign(bytes(bad))


def test_mutation_campaign_is_memory_safe(replay, tmp_path):
    images = [encode_tensors(specs(d, dead, seed=s), [enc])[0]
              for s, (d, dead) in enumerate([(1.0, False), (0.3, True), (0.05, True)])
              for enc in (fmt.DENSE, fmt.BITMASK, fmt.DELTA8, fmt.DELTA4)]
    got = run_replay(replay, list(mutations(images, 1500)), tmp_path)
    statuses = {g["init"] for g in got}
    assert statuses <= {"ok", "image size", "image entry", "weight stream", "model schedule",
                        "accumulator range"}, statuses
    assert "ok" in statuses and len(statuses) >= 3
    assert all(g["invoke"] == "ok" for g in got if g["init"] == "ok")
