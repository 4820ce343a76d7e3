"""C sources for one model: the weight image, the op schedule, the arena plan.

Usage:
    report = generate_model_sources(Path("encoder_int8.tflite"), Path("encoder_weights.etsw"),
                                    Path("build/gen"))
    # writes build/gen/et_model.h and build/gen/et_model.c; report["arena_size"], report["files"]

The device weights come from the `.etsw` sparse weight image that `export`
wrote (one source of truth), checked against the `.tflite` it came from:
every weight tensor of the model must be in the image with the same int8
values, folded biases, multipliers, shifts, dead-channel constants and
activation quantization (check_image), and the image may hold nothing else.

Jinja2 templates (templates/et_model.*.j2) give the files their structure;
the small emitters here turn numbers, byte strings and nested parameter dicts into C
initializers. Every generated file starts with a banner naming the .tflite
and its SHA-256; every generated identifier starts with `et_`. Files are
written atomically, and only after the whole model has been planned: a
model the runtime cannot run raises one UserError line and writes nothing.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jinja2
import numpy as np

from ..atomic import write_text
from ..errors import UserError
from ..export.sparse_format import ENTRY_SIZE, HEADER_SIZE, VERSION, unpack_entry, unpack_header
from ..export import sparse_codecs
from ..export.sparse_image import ALL_ENCODINGS, channel_params, encode_tensors, specs_from_tflite
from ..export.sparse_reader import read_image
from ..export.tflite_model import read_tflite
from ..export.tflm_math import mbqm
from .fuse import fuse
from .graph import Graph, build_graph, dims4
from .layout import NHWC, PLANAR, choose_kernels, insert_to_planar, tap_table
from .plan import Plan, plan_arena

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
_NAME = re.compile(r"^et_[a-z0-9_]{1,40}$")
_KINDS = {"CONV_2D": "ET_OP_CONV_2D", "DEPTHWISE_CONV_2D": "ET_OP_DEPTHWISE_CONV_2D",
          "FULLY_CONNECTED": "ET_OP_FULLY_CONNECTED", "ADD": "ET_OP_ADD", "MUL": "ET_OP_MUL",
          "MEAN": "ET_OP_MEAN", "PAD": "ET_OP_PAD", "HARD_SWISH": "ET_OP_HARD_SWISH", "RESHAPE": "ET_OP_COPY",
          "TO_PLANAR": "ET_OP_TO_PLANAR"}
_UNION = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "conv", "ADD": "add", "MUL": "mul", "MEAN": "mean",
          "PAD": "pad", "HARD_SWISH": "hswish", "TO_PLANAR": "pad"}
_LAYOUTS = {NHWC: "ET_NHWC", PLANAR: "ET_PLANAR"}


# -- small emitters ---------------------------------------------------------------

def c_value(v) -> str:
    """A C initializer: dicts become designated initializers, sequences brace lists."""
    if isinstance(v, dict):
        return "{" + ", ".join(f".{k} = {c_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(c_value(x) for x in v) + "}"
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, np.integer)):
        v = int(v)
        if not -(1 << 31) <= v < (1 << 32):
            raise ValueError(f"integer {v} does not fit 32 bits")
        return "(-2147483647 - 1)" if v == -(1 << 31) else (f"{v}u" if v >= 1 << 31 else str(v))
    if isinstance(v, str) and re.fullmatch(r"&?[A-Za-z_][A-Za-z0-9_ |]*", v):
        return v
    raise ValueError(f"cannot emit {v!r} as C")


def c_bytes(data: bytes, per_line: int = 16) -> str:
    return "\n".join("    " + ", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ","
                     for i in range(0, len(data), per_line))


def _dims(d) -> dict:
    return {"n": d[0], "h": d[1], "w": d[2], "c": d[3]}


# -- the schedule -----------------------------------------------------------------

def _op_struct(i: int, node, graph: Graph, plan: Plan, consts: bytearray, taps: str | None,
               add_lut: str | None = None) -> dict:
    def tref(t, name):
        layout, pad = plan.layout(t)
        ref = {"offset": plan.offset(t), "dims": _dims(node.dims[name])}
        return ref | ({"layout": _LAYOUTS[layout], "pad": pad} if layout != NHWC else {})

    flags = []
    in1 = {"offset": 0, "dims": _dims((0, 0, 0, 0))}
    if node.in1 is not None:
        if node.in1_const:
            data = graph.model.tensors[node.in1].data
            in1 = {"offset": len(consts), "dims": _dims(node.dims["in1"])}
            consts += data + bytes(-len(data) % 4)
            flags.append("ET_IN1_CONST")
        else:
            in1 = tref(node.in1, "in1")
    if node.fused_add:
        flags.append("ET_FUSED_ADD")
    params = dict(node.params)
    if node.kind in ("PAD", "TO_PLANAR"):
        params = {"before": _dims(params["before"]), "value": params["value"]}
    if node.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        params.setdefault("add", {"left_shift": 0})
    scratch = plan.scratch.get(i, (0, 0))
    s = {"kind": _KINDS[node.kind], "flags": " | ".join(flags) or 0,
         "weights": node.weights if node.weights is not None else "ET_NO_WEIGHTS",
         "in0": tref(node.in0, "in0"), "in1": in1, "out": tref(node.out, "out"),
         "scratch_offset": scratch[0], "scratch_size": scratch[1]}
    if taps:
        s["taps"] = f"&{taps}"
    if add_lut:
        s["add_lut"] = add_lut
    if node.kind in _UNION:
        s[f"p.{_UNION[node.kind]}"] = params
    return s


def _tap_tables(graph: Graph, plan: Plan, tensors: dict, name: str) -> tuple[list[dict], dict[int, str]]:
    """The C arrays of every sparse conv's tap table, and {node index: descriptor name}."""
    tables, names = [], {}
    for i, n in enumerate(graph.nodes):
        if getattr(n, "kernel", None) != "sparse":
            continue
        words, index = tap_table(n, plan.layouts, plan.find, tensors[n.weights])
        ident = f"{name}_taps_{i}"
        tables.append({"name": ident, "rows": len(index) - 1, "count": len(words),
                       "words": _c_words(words), "index": _c_words(index)})
        names[i] = ident
    return tables, names


def _add_luts(graph: Graph, plan: Plan, name: str) -> tuple[list[dict], dict[int, str]]:
    """For every fused ADD on a PLANAR conv: its two inputs rescaled, as TFLM's int8 ADD
    does (MBQM((x + offset) << left_shift, multiplier, shift)), for every int8 x."""
    luts, names = [], {}
    for i, n in enumerate(graph.nodes):
        if not (n.fused_add and n.kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and plan.layout(n.in0)[0] == PLANAR):
            continue
        a = n.params["add"]
        table = [mbqm((x + a[f"in{k}_offset"]) << a["left_shift"], a[f"in{k}_multiplier"], a[f"in{k}_shift"])
                 for k in (1, 2) for x in range(-128, 128)]
        ident = f"{name}_addlut_{i}"
        luts.append({"name": ident, "body": "\n".join("    " + ", ".join(str(v) for v in table[j:j + 12]) + ","
                                                        for j in range(0, 512, 12))})
        names[i] = ident
    return luts, names


def _c_words(a) -> str:
    a = [f"0x{int(x):x}u" for x in a] or ["0u"]
    return "\n".join("    " + ", ".join(a[i:i + 8]) + "," for i in range(0, len(a), 8))


def describe_ops(graph: Graph, image: bytes) -> list[dict]:
    """One row per scheduled op: kind, tflite ops, operand shapes, non-zero MACs, kernel.

    Non-zero MACs count, for a conv-family op, every non-zero weight once per
    output pixel (the convention of benchmarks/bench_firmware.py), for an FC
    once per batch row; other ops have none.
    """
    count = unpack_header(image)["tensor_count"]
    nnz = [unpack_entry(image, HEADER_SIZE + ENTRY_SIZE * i)["nnz"] for i in range(count)]
    rows = []
    for i, n in enumerate(graph.nodes):
        out = n.dims["out"]
        macs = 0
        if n.weights is not None:
            macs = nnz[n.weights] * (out[0] * out[1] * out[2])
        rows.append({"index": i, "kind": n.kind, "tflite_ops": list(n.ops),
                     "shapes": {k: list(v) for k, v in n.dims.items()}, "nonzero_macs": int(macs),
                     "kernel": getattr(n, "kernel", None) or n.kind.lower(),
                     "kernel_reason": getattr(n, "kernel_reason", ""), "pack_bytes": n.pack})
    return rows


def _entries(image: bytes) -> dict[int, int]:
    count = unpack_header(image)["tensor_count"]
    return {unpack_entry(image, HEADER_SIZE + ENTRY_SIZE * i)["tensor_index"]: i for i in range(count)}


def check_image(image: bytes, model, label: str) -> None:
    """UserError unless the image holds exactly the weights the .tflite `model` implies."""
    tensors = read_image(image)                # validates the image itself first
    specs = specs_from_tflite(model)
    extra = sorted(set(tensors) - {s.tensor_index for s in specs})
    if extra:
        raise UserError(f"{label} holds tensors {extra[:5]} that are not weights of this .tflite")
    for spec in specs:
        where = f"{label}: tensor {spec.tensor_index} '{spec.name}'"
        t = tensors.get(spec.tensor_index)
        if t is None:
            raise UserError(f"{where} is missing: the image was not made from this .tflite")
        w = np.asarray(spec.weights)
        if t.weights.shape != w.shape or not np.array_equal(t.weights, w):
            raise UserError(f"{where}: its weights differ from the .tflite's (made from another model?)")
        p = channel_params(spec, sparse_codecs.channel_major(w, spec.channel_axis), where)
        rq = spec.requant
        same = (t.bias.astype("<i4").tobytes() == p["bias_off"]
                and t.multipliers.astype("<i4").tobytes() == p["multiplier_off"]
                and t.shifts.astype("i1").tobytes() == p["shift_off"]
                and t.constants.astype("i1").tobytes() == p["const_off"]
                and tuple(t.requant[2:]) == (rq.input_zero_point, rq.output_zero_point, rq.act_min, rq.act_max))
        if not same:
            raise UserError(f"{where}: its biases or quantization differ from the .tflite's")


def _load_image(image, model, label: str, allowed) -> bytes:
    """The image bytes: read from a path, taken as given, or (None) encoded from the model here."""
    if image is None:
        return encode_tensors(specs_from_tflite(model), allowed)[0]   # may hold no tensor at all
    if isinstance(image, (str, Path)):
        try:
            image = Path(image).read_bytes()
        except OSError as e:
            raise UserError(f"cannot read the weight image {image}: {e.strerror}") from None
    check_image(bytes(image), model, label)
    return bytes(image)


def generate_model_sources(tflite_path: Path, image_path=None, out_dir: Path | None = None,
                           name: str = "et_model", allowed=ALL_ENCODINGS, fuse_ops: bool = True,
                           inplace: bool = True, planar: bool = True) -> dict:
    """Write {name}.h and {name}.c for the model into out_dir; return a report dict.

    image_path: the `.etsw` made from this .tflite by `export` (a path, or its
    bytes); it must match the .tflite (check_image). None encodes the image
    here, choosing among `allowed` encodings (tests, the codegen of a bare
    .tflite). fuse_ops/inplace switch the memory optimisations off, for
    comparisons.
    """
    if out_dir is None:
        raise UserError("generate_model_sources needs an output folder")
    if not _NAME.match(name):
        raise UserError(f"model name {name!r} must match {_NAME.pattern} (C identifier with the et_ prefix)")
    tflite_path = Path(tflite_path)
    try:
        data = tflite_path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {tflite_path}: {e.strerror}") from None
    model = read_tflite(data, str(tflite_path))
    image = _load_image(image_path, model, str(image_path) if isinstance(image_path, (str, Path)) else
                        "the weight image", allowed)
    graph = build_graph(model, _entries(image))
    if not graph.nodes:
        raise UserError(f"{tflite_path} has no ops")
    notes = fuse(graph) if fuse_ops else []
    if planar:
        insert_to_planar(graph)
    plan = plan_arena(graph, inplace=inplace, planar=planar)
    by_entry = {i: t for i, t in enumerate(read_image(image).values())}
    choose_kernels(graph, plan.layouts, plan.find, by_entry)
    if any(n.pack for n in graph.nodes):       # the SMLAD kernels' pack buffers join the plan
        plan = plan_arena(graph, inplace=inplace, planar=planar)
    notes += plan.notes
    tables, tap_names = _tap_tables(graph, plan, by_entry, name)
    luts, lut_names = _add_luts(graph, plan, name)
    if not graph.nodes:
        raise UserError(f"{tflite_path}: nothing to run once RESHAPEs are aliased")
    consts = bytearray()
    ops = [{"comment": f"{n.kind} (tflite ops {', '.join(map(str, n.ops))})",
            "init": c_value(_op_struct(i, n, graph, plan, consts, tap_names.get(i), lut_names.get(i)))}
           for i, n in enumerate(graph.nodes)]
    sha = hashlib.sha256(data).hexdigest()
    qi, qo = graph.quant(graph.input), graph.quant(graph.output)
    in_dims, out_dims = graph.model.tensors[graph.input].shape, graph.model.tensors[graph.output].shape
    model_init = c_value({
        "image": f"{name}_image", "image_size": len(image), "consts": f"{name}_consts",
        "consts_size": len(consts), "ops": f"{name}_ops", "op_count": len(ops), "arena_size": plan.arena_size,
        "input": {"offset": plan.offset(graph.input), "dims": _dims(dims4(in_dims))},
        "output": {"offset": plan.offset(graph.output), "dims": _dims(dims4(out_dims))},
        "input_bytes": graph.size(graph.input), "output_bytes": graph.size(graph.output)})
    ctx = {
        "banner": f"Generated by entropi_tiny.codegen from {tflite_path.name} (sha256 {sha}). Do not edit.",
        "name": name, "macro": name.upper(), "guard": f"{name.upper()}_H",
        "arena_size": plan.arena_size, "input_bytes": graph.size(graph.input),
        "output_bytes": graph.size(graph.output), "input_zero_point": qi[1], "output_zero_point": qo[1],
        "input_scale": repr(qi[0]), "output_scale": repr(qo[0]),
        "plan_lines": [f"[{b.offset:>7}, {b.offset + b.size:>7}) nodes {b.start}..{b.end}: {b.name}"
                       for b in sorted(plan.buffers, key=lambda b: (b.offset, b.start))],
        "op_count": len(ops), "image_version": VERSION, "image_size": len(image), "image_tensors": len(_entries(image)),
        "image_bytes": c_bytes(image), "consts_alloc": max(len(consts), 4),
        "consts_bytes": c_bytes(bytes(consts) or bytes(4)), "ops": ops, "model_init": model_init,
        "tap_tables": tables, "add_luts": luts,
    }
    out_dir = Path(out_dir)
    files = {f"{name}.h": _ENV.get_template("et_model.h.j2").render(ctx),
             f"{name}.c": _ENV.get_template("et_model.c.j2").render(ctx)}
    op_table = describe_ops(graph, image)
    ops_json = json.dumps({"format": "entropi-tiny/ops-v1", "tflite_sha256": sha, "ops": op_table}, indent=1)
    for fname, text in files.items():
        write_text(out_dir / fname, text)
    write_text(out_dir / f"{name}_ops.json", ops_json + "\n")   # the op table, for the per-op profile
    return {
        "tflite": str(tflite_path), "sha256": sha, "files": [str(out_dir / f) for f in files],
        "ops_file": str(out_dir / f"{name}_ops.json"),
        "arena_size": plan.arena_size, "image_size": len(image), "consts_size": len(consts),
        "op_count": len(ops), "tap_bytes": sum(4 * (t["count"] + t["rows"] + 1) for t in tables),
        "tap_nonzeros": sum(t["count"] - t["rows"] for t in tables),
        "nodes": [n.kind for n in graph.nodes], "notes": notes, "ops": op_table,
        "input_zero_point": qi[1], "output_zero_point": qo[1], "input_scale": qi[0], "output_scale": qo[0],
    }
