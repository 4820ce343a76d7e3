"""Tests of the sparse weight image and the .tflite reader.

Usage: .venv/bin/python -m pytest tests/test_sparse_image.py
"""
import struct

import numpy as np
import pytest

from entropi_tiny.errors import UserError
from entropi_tiny.export import sparse_format as fmt
from entropi_tiny.export.sparse_image import (
    Requant, WeightSpec, decode_image, encode_model, encode_tensors, read_image,
)
from entropi_tiny.export.tflm_math import mbqm, quantize_multiplier
from entropi_tiny.export.tflite_model import read_tflite

from keras_models import DENSITIES, pruned_cnn_tflite

ENCODINGS = list(fmt.ENCODING_NAMES)
SHAPES = {  # name: (shape, channel axis, op)
    "conv1x1": ((8, 1, 1, 16), 0, fmt.OP_CONV_2D),
    "conv3x3_in3": ((16, 3, 3, 3), 0, fmt.OP_CONV_2D),
    "conv_7ch": ((7, 3, 3, 7), 0, fmt.OP_CONV_2D),
    "one_output": ((1, 3, 3, 8), 0, fmt.OP_CONV_2D),
    "depthwise": ((1, 3, 3, 24), 3, fmt.OP_DEPTHWISE_CONV_2D),
    "fc": ((10, 64), 0, fmt.OP_FULLY_CONNECTED),
    "wide": ((24, 3, 3, 64), 0, fmt.OP_CONV_2D),
}


REQUANT = Requant(0.02, 0.05, -3, 7, -10, 120)


def random_spec(shape, axis, op, density, seed=0, index=0):
    rng = np.random.default_rng(seed)
    w = rng.integers(1, 128, shape) * rng.choice([-1, 1], shape)
    w = (w * (rng.random(shape) < density)).astype(np.int8)
    c = shape[axis]
    return WeightSpec(tensor_index=index, weights=w, channel_axis=axis, op=op,
                      scales=rng.uniform(1e-4, 1e-2, c).astype(np.float32), zero_points=np.zeros(c, np.int64),
                      bias=rng.integers(-2**30, 2**30, c).astype(np.int32), bias_index=100 + index,
                      requant=REQUANT, name=f"t{index}")


def expected_params(spec):
    """Live mask, folded biases, multipliers, shifts, dead constants, computed independently."""
    cm = np.moveaxis(spec.weights, spec.channel_axis, 0).reshape(spec.weights.shape[spec.channel_axis], -1)
    live = cm.any(axis=1)
    rq = spec.requant
    folded = spec.bias.astype(np.int64) - rq.input_zero_point * cm.astype(np.int64).sum(axis=1)
    scales = np.broadcast_to(spec.scales, live.shape)
    pairs = [quantize_multiplier(float(np.float32(rq.input_scale)) * float(s) / float(np.float32(rq.output_scale)))
             for s in scales]
    consts = [min(max(mbqm(int(folded[o]), *pairs[o]) + rq.output_zero_point, rq.act_min), rq.act_max)
              for o in np.flatnonzero(~live)]
    return live, folded[live], np.array([m for m, _ in pairs])[live], np.array([s for _, s in pairs])[live], consts


def assert_params(t, spec):
    live, bias, mult, shift, consts = expected_params(spec)
    assert np.array_equal(t.live, live) and np.array_equal(t.bias, bias)
    assert np.array_equal(t.multipliers, mult) and np.array_equal(t.shifts, shift)
    assert np.array_equal(t.constants, consts)


def resign(image: bytes) -> bytes:
    """The image with its CRC recomputed, to reach the checks behind the checksum."""
    return image[:24] + struct.pack("<I", fmt.crc32(image[32:])) + image[28:]


@pytest.fixture(scope="module")
def model_bytes():
    return pruned_cnn_tflite()


@pytest.fixture(scope="module")
def small_image():
    specs = [random_spec(*SHAPES["wide"], d, seed=i, index=i) for i, d in enumerate([1.0, 0.5, 0.12, 0.01, 0.0])]
    return encode_tensors(specs)[0]


# -- round trips --------------------------------------------------------------------

@pytest.mark.parametrize("density", [1.0, 0.1, 0.01, 0.001, 0.0])
@pytest.mark.parametrize("name", list(SHAPES))
def test_round_trip_every_encoding(name, density):
    spec = random_spec(*SHAPES[name], density)
    for allowed in [ENCODINGS] + [[e] for e in ENCODINGS if e != fmt.ZERO or not spec.weights.any()]:
        image, report = encode_tensors([spec], allowed)
        t = read_image(image)[0]
        assert t.weights.dtype == np.int8 and np.array_equal(t.weights, spec.weights), allowed
        assert_params(t, spec)
        assert t.nnz == report["totals"]["nnz"] == np.count_nonzero(spec.weights)
        assert report["totals"]["bytes"] == len(image) and len(image) % 4 == 0


def test_chooser_picks_each_encoding():
    picked = {}
    for density in [1.0, 0.5, 0.12, 0.01, 0.0]:
        _, report = encode_tensors([random_spec((64, 3, 3, 64), 0, fmt.OP_CONV_2D, density)])
        picked[density] = report["tensors"][0]["encoding"]
    assert picked == {1.0: "DENSE", 0.5: "BITMASK", 0.12: "DELTA4", 0.01: "DELTA8", 0.0: "ZERO"}


def test_delta8_long_gaps_and_big_offsets():
    """Gaps needing the 2- and 3-byte codes, and offset tables wider than 16 bits."""
    w = np.zeros((40, 5000), np.int8)
    w[:, [0, 300, 4999]] = 5
    w[:, 1000:2800] = -7          # 72k non-zeros: value offsets need 32 bits
    spec = WeightSpec(0, w, 0, np.ones(1, np.float32), np.zeros(1), REQUANT, op=fmt.OP_FULLY_CONNECTED)
    for allowed in ([fmt.DELTA8], [fmt.DELTA4], [fmt.BITMASK]):
        image, _ = encode_tensors([spec], allowed)
        assert np.array_equal(decode_image(image)[0], w)
    entry = fmt.unpack_entry(encode_tensors([spec], [fmt.DELTA4])[0], fmt.HEADER_SIZE)
    assert entry["index_width"] == 4 and entry["flags"] & fmt.PER_TENSOR_SCALE


def test_real_model_round_trip(model_bytes):
    model = read_tflite(model_bytes)
    image, report = encode_model(model_bytes)
    tensors = read_image(image)
    assert sorted(r["encoding"] for r in report["tensors"]) == sorted(
        ["DENSE", "BITMASK", "DELTA4", "DELTA8", "ZERO", "DENSE"])
    zero = next(r for r in report["tensors"] if r["encoding"] == "ZERO")
    c = zero["channels"]    # a ZERO tensor costs its live bitmap and one constant per channel
    assert zero["live_channels"] == 0 and zero["param_bytes"] == fmt.pad4((c + 7) // 8) + fmt.pad4(c)
    assert len(tensors) == len(DENSITIES)
    for op in model.operators:
        if op.opcode in fmt.OP_CODES:
            t = tensors[op.inputs[1]]
            assert np.array_equal(t.weights, model.tensors[op.inputs[1]].array())
            w = model.tensors[op.inputs[1]]
            bias = model.tensors[op.inputs[2]].array() if op.inputs[2] >= 0 else np.zeros(t.live.size)
            cm = np.moveaxis(t.weights, t.channel_axis, 0).reshape(t.live.size, -1).astype(np.int64)
            zp_in = model.tensors[op.inputs[0]].quantization.zero_point[0]
            assert np.array_equal(t.bias, (bias - zp_in * cm.sum(axis=1))[t.live])
            assert t.per_tensor_scale == (w.quantization.scale.size == 1)


def test_tflite_reader_matches_litert(model_bytes):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    model = read_tflite(model_bytes)
    for d in interp.get_tensor_details():
        t = model.tensors[d["index"]]
        q = d["quantization_parameters"]
        assert t.name == d["name"] and list(t.shape) == list(d["shape"])
        if t.quantization is not None:
            assert np.array_equal(t.quantization.scale, q["scales"])
            assert t.quantization.quantized_dimension == q["quantized_dimension"]
        if t.data is not None:
            assert np.array_equal(t.array(), interp.get_tensor(d["index"]))
    assert {op.opcode for op in model.operators} >= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


# -- corrupt images ---------------------------------------------------------------------

def test_corrupt_image_flipped_byte(small_image):
    for pos in (40, len(small_image) // 2, len(small_image) - 1):
        bad = bytearray(small_image)
        bad[pos] ^= 0x10
        with pytest.raises(UserError, match="CRC-32 mismatch"):
            decode_image(bytes(bad))


@pytest.mark.parametrize("cut", [0, 10, 31, 32, 200, -1])
def test_corrupt_image_truncated(small_image, cut):
    with pytest.raises(UserError, match="shorter|truncated"):
        decode_image(small_image[:cut])


def test_corrupt_image_header_fields(small_image):
    with pytest.raises(UserError, match="magic"):
        decode_image(b"XXXX" + small_image[4:])
    with pytest.raises(UserError, match="version 1 is not supported"):
        decode_image(small_image[:4] + struct.pack("<H", 1) + small_image[6:])
    with pytest.raises(UserError, match="byte order"):
        decode_image(small_image[:8] + b"\x01\x02" + small_image[10:])


@pytest.mark.parametrize("field", ["values_off", "positions_off", "bias_off", "end_off"])
def test_corrupt_image_offset_past_end(small_image, field):
    for i in range(5):
        pos = fmt.HEADER_SIZE + fmt.ENTRY_SIZE * i
        e = fmt.unpack_entry(small_image, pos)
        if e[field]:
            e[field] = len(small_image) + 64
            bad = resign(small_image[:pos] + fmt.pack_entry(e) + small_image[pos + fmt.ENTRY_SIZE:])
            with pytest.raises(UserError, match=field):
                decode_image(bad)


def test_corrupt_image_never_crashes(small_image):
    """Random byte changes behind a valid CRC: a clean UserError or a clean decode."""
    rng = np.random.default_rng(0)
    errors, directory_end = 0, fmt.HEADER_SIZE + 5 * fmt.ENTRY_SIZE
    for i in range(400):
        bad = bytearray(small_image)
        pos = int(rng.integers(32, directory_end if i % 2 else len(bad)))
        bad[pos] = (bad[pos] + int(rng.integers(1, 256))) % 256
        try:
            decode_image(resign(bytes(bad)))
        except UserError as e:
            errors += 1
            assert "\n" not in str(e)
    assert errors > 100


def test_tflite_sparse_model_is_refused():
    with pytest.raises(UserError, match="DENSIFY"):
        encode_model(pruned_cnn_tflite(tflite_sparsity=True))


def test_corrupt_tflite_never_crashes(model_bytes):
    with pytest.raises(UserError, match="TFL3"):
        read_tflite(b"\x00" * 64)
    with pytest.raises(UserError, match="root table offset points past the end"):
        read_tflite(struct.pack("<I", len(model_bytes) + 100) + model_bytes[4:])
    for cut in (0, 7, 100, len(model_bytes) // 2, len(model_bytes) - 1):
        with pytest.raises(UserError):
            encode_model(model_bytes[:cut])
    rng = np.random.default_rng(1)
    for _ in range(300):
        bad = bytearray(model_bytes)
        for pos in rng.integers(8, len(bad), 3):
            bad[pos] = int(rng.integers(0, 256))
        try:
            encode_model(bytes(bad))
        except UserError as e:
            assert "\n" not in str(e)


def test_model_without_weights_or_int8_is_refused(model_bytes):
    from entropi_tiny.export.flatbuf import FlatBuf

    fb = FlatBuf(model_bytes)
    sg = fb.tables(fb.root(), 2)[0]
    ops_start, _ = fb.vector(sg, 3, 4)
    no_ops = model_bytes[:ops_start - 4] + struct.pack("<I", 0) + model_bytes[ops_start:]
    with pytest.raises(UserError, match="no constant"):
        encode_model(no_ops)
    conv = next(op for op in read_tflite(model_bytes).operators if op.opcode == "CONV_2D")
    type_pos = fb.field(fb.tables(sg, 0)[conv.inputs[1]], 1, 1)
    as_float = model_bytes[:type_pos] + b"\x00" + model_bytes[type_pos + 1:]
    with pytest.raises(UserError, match="not a dense int8 quantized tensor"):
        encode_model(as_float)


# -- requantization parameters ----------------------------------------------------------

@pytest.mark.parametrize("real,expect", [
    (0.0, (0, 0)), (1.0, (1 << 30, 1)), (0.5, (1 << 30, 0)), (0.75, (3 << 29, 0)),
    (1 - 2**-33, (1 << 30, 1)), (2**-40, (0, 0)), (0.0001, (1759218604, -13)),
])
def test_quantize_multiplier(real, expect):
    assert quantize_multiplier(real) == expect


def test_dead_channels_store_only_a_constant():
    spec = random_spec((16, 3, 3, 8), 0, fmt.OP_CONV_2D, 0.05, seed=3)
    spec.weights[[1, 5, 6]] = 0
    image, report = encode_tensors([spec])
    t = read_image(image)[0]
    assert report["totals"]["live_channels"] == int(spec.weights.reshape(16, -1).any(1).sum())
    assert t.constants.size == 16 - t.live.sum() >= 3 and not t.live[[1, 5, 6]].any()
    assert_params(t, spec)
    dense = encode_tensors([random_spec((16, 3, 3, 8), 0, fmt.OP_CONV_2D, 1.0, seed=3)])[0]
    e = fmt.unpack_entry(dense, fmt.HEADER_SIZE)
    assert not e["flags"] & fmt.HAS_DEAD and e["live_off"] == e["const_off"] == 0


def test_nonzero_weight_zero_point_is_refused():
    spec = random_spec((4, 1, 1, 4), 0, fmt.OP_CONV_2D, 1.0)
    spec.zero_points = np.ones(4, np.int64)
    with pytest.raises(UserError, match="zero points must be 0"):
        encode_tensors([spec])


def _tflm_requant(acc, multiplier, shift):
    """TFLM's MultiplyByQuantizedMultiplier (double rounding), vectorised over channels."""
    acc = acc.astype(np.int64) * (1 << np.maximum(shift, 0))
    prod = acc * multiplier
    nudge = np.where(prod >= 0, 1 << 30, 1 - (1 << 30))
    high = np.trunc((prod + nudge) / (1 << 31)).astype(np.int64)  # exact: |prod| < 2**62
    right = np.maximum(-shift, 0)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


def test_multipliers_reproduce_litert_fully_connected(model_bytes):
    """The stored multipliers/shifts give LiteRT's reference FC output bit for bit."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=model_bytes, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.random.default_rng(0).integers(-128, 128, inp["shape"]).astype(np.int8))
    interp.invoke()
    model = read_tflite(model_bytes)
    fc = next(op for op in model.operators if op.opcode == "FULLY_CONNECTED")
    t = read_image(encode_model(model_bytes)[0])[fc.inputs[1]]
    x = interp.get_tensor(fc.inputs[0]).astype(np.int64).reshape(-1)
    assert t.live.all()
    acc = t.weights.astype(np.int64) @ x + t.bias                  # the input zero point is folded in
    out = np.clip(_tflm_requant(acc, t.multipliers.astype(np.int64), t.shifts.astype(np.int64))
                  + t.requant[3], t.requant[4], t.requant[5])
    assert np.array_equal(out, interp.get_tensor(fc.outputs[0]).reshape(-1))
