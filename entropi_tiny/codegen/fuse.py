"""Graph rewrites that save arena memory without changing a single output bit.

Usage:
    notes = fuse(graph)      # rewrites graph.nodes in place; returns what was fused

PAD into the following CONV/DEPTHWISE_CONV: TFLite's PAD fills with the
input zero point; a conv tap reading such a pixel contributes
w * (zp - zp) = 0 in TFLM, and exactly the same in our kernels, which treat
every tap outside the input as x = zp (folded bias). So a PAD whose only
consumer is a conv becomes that conv's explicit padding and its output
tensor, the largest of the block, disappears.

ADD into the CONV/DEPTHWISE_CONV producing one of its inputs: the kernel
computes each int8 conv output and immediately the ADD of it with the other
operand at the same position, so the conv's output tensor disappears too;
with the planner writing the sum over the other operand (a ResNet's
shortcut) a residual block needs two activation buffers instead of three.
The conv chosen is the later-produced input's, so the other operand exists
when the fused node runs. ADD is symmetric in TFLM's arithmetic (each input
is rescaled with its own multiplier, then summed), so the conv result
becomes "input 1" with its parameters swapped in if needed.
"""
from __future__ import annotations

from .graph import Graph, Node

CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def _consumers(nodes: list[Node]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.inputs if n.kind != "FUSED" else ():
            out.setdefault(t, []).append(i)
    return out


def _producers(nodes: list[Node]) -> dict[int, int]:
    return {n.out: i for i, n in enumerate(nodes) if n.kind != "FUSED"}


def fuse_pads(graph: Graph) -> list[str]:
    notes, nodes = [], graph.nodes
    cons = _consumers(nodes)
    for pi, pad in enumerate(nodes):
        users = cons.get(pad.out, [])
        if pad.kind != "PAD" or pad.out == graph.output or len(users) != 1:
            continue
        conv = nodes[users[0]]
        before = pad.params["before"]
        pad_in, pad_out = pad.dims["in0"], pad.dims["out"]
        if conv.kind not in CONVS or conv.in0 != pad.out or before[0] or before[3] \
                or pad_in[0] != pad_out[0] or pad_in[3] != pad_out[3]:
            continue
        conv.params["pad_top"] += before[1]
        conv.params["pad_left"] += before[2]
        conv.in0, conv.dims["in0"] = pad.in0, pad_in
        conv.ops = pad.ops + conv.ops
        pad.kind = "FUSED"
        notes.append(f"PAD op {pad.ops[0]} fused into {conv.kind} op {conv.ops[-1]}")
    graph.nodes = [n for n in nodes if n.kind != "FUSED"]
    return notes


def _swap_add_inputs(p: dict) -> dict:
    q = dict(p)
    for a, b in (("in1_offset", "in2_offset"), ("in1_multiplier", "in2_multiplier"), ("in1_shift", "in2_shift")):
        q[a], q[b] = p[b], p[a]
    return q


def fuse_adds(graph: Graph) -> list[str]:
    notes, nodes = [], graph.nodes
    for add in nodes:
        if add.kind != "ADD" or add.in1_const or add.dims["in0"] != add.dims["out"] \
                or add.dims["in1"] != add.dims["out"]:
            continue
        cons, prod = _consumers(nodes), _producers(nodes)
        candidates = []
        for slot, t in (("in0", add.in0), ("in1", add.in1)):
            pi = prod.get(t)
            if pi is not None and nodes[pi].kind in CONVS and not nodes[pi].fused_add \
                    and cons.get(t) == [nodes.index(add)] and t != graph.output:
                candidates.append((pi, slot))
        if not candidates:
            continue
        pi, slot = max(candidates)             # the later conv: the other operand already exists
        conv = nodes[pi]
        other = add.in1 if slot == "in0" else add.in0
        if prod.get(other, -1) > pi:
            continue
        conv.params["add"] = add.params if slot == "in0" else _swap_add_inputs(add.params)
        conv.in1, conv.dims["in1"], conv.fused_add = other, add.dims["out"], True
        conv.out, conv.dims["out"] = add.out, add.dims["out"]
        conv.ops = conv.ops + add.ops
        add.kind = "FUSED"
        notes.append(f"ADD op {add.ops[0]} fused into {conv.kind} op {conv.ops[0]}")
    graph.nodes = [n for n in nodes if n.kind != "FUSED"]
    return notes


def fuse(graph: Graph, pads: bool = True, adds: bool = True) -> list[str]:
    return (fuse_pads(graph) if pads else []) + (fuse_adds(graph) if adds else [])
