"""A user's int8 model as a feature extractor: choose its feature tensor, cut the graph there.

Usage:
    name, data = feature_extractor(Path("my.tflite"), feature_tensor="")
    # data: the same bytes when the feature tensor is already the output

The feature tensor defaults to the input of the model's last classifier: walk
back from the output over RESHAPE and SOFTMAX, and if a FULLY_CONNECTED op made
it, take that op's input (the classifier is what the device head replaces);
otherwise the model's output is already the feature. The cut model keeps only
the ops the feature tensor depends on and has it as its one output; it is
written with the TFLite schema's object API (tflite_micro's
schema_py_generated), so TFLM runs it as it ran the original and stays the
bit-exact reference.
"""
from __future__ import annotations

from pathlib import Path

import flatbuffers
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from ..errors import UserError
from .tflite_model import TfliteModel
from .tflite_ops import check_allowed_ops, parse_tflite

PASS_THROUGH = ("RESHAPE", "SOFTMAX")


def _producers(model: TfliteModel) -> dict[int, int]:
    return {int(t): op.index for op in model.operators for t in op.outputs}


def default_feature(model: TfliteModel) -> int:
    """Index of the input of the last classifier, or the output when there is none."""
    made_by = _producers(model)
    t = int(model.outputs[0])
    while t in made_by:
        op = model.operators[made_by[t]]
        if op.opcode == "FULLY_CONNECTED":
            return int(op.inputs[0])
        if op.opcode not in PASS_THROUGH:
            break
        t = int(op.inputs[0])
    return int(model.outputs[0])


def _find(model: TfliteModel, name: str) -> int:
    for t in model.tensors:
        if t.name == name:
            return t.index
    raise UserError(f"the model has no tensor named {name!r} (--feature-tensor)")


def cut_at(raw: bytes, model: TfliteModel, feature: int) -> bytes:
    """The model with `feature` as its only output and only the ops it needs.

    The graph walk runs on the bounds-checked reader's view (`model`); only a
    file that reader accepted is unpacked with the schema's object API, whose
    operator list has the same order, and packed again."""
    made_by = _producers(model)
    if feature not in made_by:
        raise UserError(f"tensor {model.tensors[feature].name!r} is not computed by any op; "
                        "choose an activation tensor as --feature-tensor")
    keep, todo = set(), [feature]
    while todo:
        t = todo.pop()
        if t in made_by and made_by[t] not in keep:
            keep.add(made_by[t])
            todo.extend(int(x) for x in model.operators[made_by[t]].inputs if x >= 0)
    obj = schema.ModelT.InitFromPackedBuf(raw, 0)
    g = obj.subgraphs[0]
    g.operators = [op for i, op in enumerate(g.operators) if i in keep]
    g.outputs = [feature]
    builder = flatbuffers.Builder(1024)
    builder.Finish(obj.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def feature_extractor(path: Path, feature_tensor: str = "") -> tuple[str, bytes]:
    """(feature tensor name, .tflite bytes ending at it); refuses a model we cannot run."""
    raw, label = Path(path).read_bytes(), str(path)
    model = parse_tflite(path)         # the ops are checked on the part that is kept
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"{label}: the model must have one input and one output")
    feature = _find(model, feature_tensor) if feature_tensor else default_feature(model)
    name = model.tensors[feature].name
    if feature == int(model.outputs[0]):
        check_allowed_ops(model)
        return name, raw
    cut = cut_at(raw, model, feature)
    check_allowed_ops(parse_tflite(cut))
    return name, cut
