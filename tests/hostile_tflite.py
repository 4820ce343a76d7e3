"""Legal .tflite flatbuffers built to exhaust a reader (issue 17), and small good ones.

Usage:
    from hostile_tflite import shared_shape_model, shared_buffer_model, small_conv_model
    data = shared_shape_model(60_000)       # ~1 MB: 60,000 tensors, one shared shape vector
    data = shared_buffer_model(400_000, 3_000)   # operators pointing at one large buffer
    data = small_conv_model(name="w")       # a valid int8 CONV_2D model (fuzz seed)

FlatBuffers let many fields hold the offset of one vector or table. A reader
that materialises each field separately then does N x M work from a file of
N + M entries. The builders below write with the flatbuffers Builder and the
schema module shipped in tflite-micro, sharing on purpose.
"""
from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as s


def _int_vector(b: flatbuffers.Builder, values) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(list(values)):
        b.PrependInt32(int(v))
    return b.EndVector()


def _offset_vector(b: flatbuffers.Builder, offsets) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(list(offsets)):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _byte_vector(b: flatbuffers.Builder, data: bytes) -> int:
    return b.CreateByteVector(bytes(data))


def _quant(b, scales, zeros, dim=0) -> int:
    sv = b.StartVector(4, len(scales), 4)
    for x in reversed(list(scales)):
        b.PrependFloat32(float(x))
    sv = b.EndVector()
    b.StartVector(8, len(zeros), 8)
    for z in reversed(list(zeros)):
        b.PrependInt64(int(z))
    zv = b.EndVector()
    s.QuantizationParametersStart(b)
    s.QuantizationParametersAddScale(b, sv)
    s.QuantizationParametersAddZeroPoint(b, zv)
    s.QuantizationParametersAddQuantizedDimension(b, dim)
    return s.QuantizationParametersEnd(b)


def _tensor(b, shape_vec: int, ttype: int, buffer: int, name: int | None = None,
            quant: int | None = None) -> int:
    s.TensorStart(b)
    s.TensorAddShape(b, shape_vec)
    s.TensorAddType(b, ttype)
    s.TensorAddBuffer(b, buffer)
    if name is not None:
        s.TensorAddName(b, name)
    if quant is not None:
        s.TensorAddQuantization(b, quant)
    return s.TensorEnd(b)


def _buffer(b, data_vec: int | None) -> int:
    s.BufferStart(b)
    if data_vec is not None:
        s.BufferAddData(b, data_vec)
    return s.BufferEnd(b)


def _opcode(b, code: int) -> int:
    s.OperatorCodeStart(b)
    s.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
    s.OperatorCodeAddBuiltinCode(b, code)
    s.OperatorCodeAddVersion(b, 1)
    return s.OperatorCodeEnd(b)


def _operator(b, inputs_vec: int, outputs_vec: int, options: int | None = None,
              options_type: int = 0) -> int:
    s.OperatorStart(b)
    s.OperatorAddOpcodeIndex(b, 0)
    s.OperatorAddInputs(b, inputs_vec)
    s.OperatorAddOutputs(b, outputs_vec)
    if options is not None:
        s.OperatorAddBuiltinOptionsType(b, options_type)
        s.OperatorAddBuiltinOptions(b, options)
    return s.OperatorEnd(b)


def _finish(b, tensors, operators, buffers, opcodes, inputs, outputs) -> bytes:
    tv = _offset_vector(b, tensors)
    ov = _offset_vector(b, operators)
    iv, outv = _int_vector(b, inputs), _int_vector(b, outputs)
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tv)
    s.SubGraphAddInputs(b, iv)
    s.SubGraphAddOutputs(b, outv)
    s.SubGraphAddOperators(b, ov)
    sg = s.SubGraphEnd(b)
    sgv = _offset_vector(b, [sg])
    bv = _offset_vector(b, buffers)
    cv = _offset_vector(b, opcodes)
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddOperatorCodes(b, cv)
    s.ModelAddSubgraphs(b, sgv)
    s.ModelAddBuffers(b, bv)
    m = s.ModelEnd(b)
    b.Finish(m, file_identifier=b"TFL3")
    return bytes(b.Output())


def shared_shape_model(n: int = 60_000) -> bytes:
    """n tensors whose shapes are all the same n-entry vector: n x n elements to read."""
    b = flatbuffers.Builder(1 << 20)
    shape = _int_vector(b, [1] * n)
    empty = _buffer(b, None)
    tensors = [_tensor(b, shape, s.TensorType.FLOAT32, 0) for _ in range(n)]   # defaults: 8 B each
    return _finish(b, tensors, [], [empty], [_opcode(b, s.BuiltinOperator.CONV_2D)], [0], [0])


def shared_buffer_model(weight_bytes: int = 400_000, n_ops: int = 3_000,
                        share_data: bool = False) -> bytes:
    """n_ops FULLY_CONNECTED operators, each with its own weight tensor, all of them
    on one buffer of weight_bytes int8 values (share_data: on n_ops buffer tables that
    all hold the same data vector). A reader that copies the weights per tensor or
    per buffer does n_ops x weight_bytes work from a file of about weight_bytes."""
    b = flatbuffers.Builder(weight_bytes + (1 << 20))
    rows = 100
    cols = weight_bytes // rows
    wdata = _byte_vector(b, np.ones(rows * cols, np.int8).tobytes())
    bdata = _byte_vector(b, np.zeros(rows, np.int32).tobytes())
    n_weight_buffers = n_ops if share_data else 1
    buffers = [_buffer(b, None), _buffer(b, bdata)] + [_buffer(b, wdata)
                                                       for _ in range(n_weight_buffers)]
    q1 = _quant(b, [0.05], [0])
    wshape = _int_vector(b, [rows, cols])
    tensors = [
        _tensor(b, _int_vector(b, [1, cols]), s.TensorType.INT8, 0, b.CreateString("x"), q1),
        _tensor(b, _int_vector(b, [rows]), s.TensorType.INT32, 1, b.CreateString("b"),
                _quant(b, [0.0025], [0])),
        _tensor(b, _int_vector(b, [1, rows]), s.TensorType.INT8, 0, b.CreateString("y"), q1),
    ]
    tensors += [_tensor(b, wshape, s.TensorType.INT8, 2 + (i if share_data else 0), None, q1)
                for i in range(n_ops)]
    outs = _int_vector(b, [2])
    ops = [_operator(b, _int_vector(b, [0, 3 + i, 1]), outs) for i in range(n_ops)]
    code = _opcode(b, s.BuiltinOperator.FULLY_CONNECTED)
    return _finish(b, tensors, ops, buffers, [code], [0], [2])


def small_conv_model(name: str = "weights", channels: int = 4, per_channel: bool = True,
                     quantized_dimension: int = 0, conv_inputs=(0, 1, 2), model_inputs=(0,),
                     bias_dimension: int | None = None) -> bytes:
    """A valid int8 CONV_2D (3x3, 8x8x3 -> 8x8xC, per-channel or per-tensor weights)."""
    b = flatbuffers.Builder(4096)
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (channels, 3, 3, 3), dtype=np.int8)
    w[w % 3 == 0] = 0
    bias = rng.integers(-500, 500, channels, dtype=np.int32)
    wdata, bdata = _byte_vector(b, w.tobytes()), _byte_vector(b, bias.tobytes())
    buffers = [_buffer(b, None), _buffer(b, wdata), _buffer(b, bdata)]
    n_scales = channels if per_channel else 1
    wq = _quant(b, [0.01 + 0.001 * i for i in range(n_scales)], [0] * n_scales,
                quantized_dimension)
    bq = _quant(b, [0.0005 + 0.00005 * i for i in range(n_scales)], [0] * n_scales,
                quantized_dimension if bias_dimension is None else bias_dimension)
    tensors = [
        _tensor(b, _int_vector(b, [1, 8, 8, 3]), s.TensorType.INT8, 0, b.CreateString("input"),
                _quant(b, [0.05], [-1])),
        _tensor(b, _int_vector(b, [channels, 3, 3, 3]), s.TensorType.INT8, 1,
                b.CreateString(name), wq),
        _tensor(b, _int_vector(b, [channels]), s.TensorType.INT32, 2, b.CreateString("bias"), bq),
        _tensor(b, _int_vector(b, [1, 8, 8, channels]), s.TensorType.INT8, 0,
                b.CreateString("output"), _quant(b, [0.1], [2])),
    ]
    s.Conv2DOptionsStart(b)
    s.Conv2DOptionsAddPadding(b, s.Padding.SAME)
    s.Conv2DOptionsAddStrideW(b, 1)
    s.Conv2DOptionsAddStrideH(b, 1)
    s.Conv2DOptionsAddFusedActivationFunction(b, s.ActivationFunctionType.RELU)
    opts = s.Conv2DOptionsEnd(b)
    op = _operator(b, _int_vector(b, conv_inputs), _int_vector(b, [3]), opts,
                   s.BuiltinOptions.Conv2DOptions)
    return _finish(b, tensors, [op], buffers, [_opcode(b, s.BuiltinOperator.CONV_2D)],
                   model_inputs, [3])
