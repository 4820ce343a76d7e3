"""Static arena plan: one offset per activation buffer, computed on the host from lifetimes.

Usage:
    plan = plan_arena(graph)              # after fuse(); removes RESHAPE nodes (aliases)
    plan.arena_size, plan.offset(tensor), plan.scratch[node_index]

Three steps. (1) Aliasing: a RESHAPE's output is its input's buffer (the
node disappears), and an element-wise node (ADD, MUL, HARD_SWISH, a conv
with a fused ADD) writes over an input of the output's size whose last use
is this node, so input and output share one buffer. (2) Lifetimes: a
buffer lives from the node producing its first tensor (the model input:
from the start) to the last node reading any of its tensors (the model
output: to the end); a conv's int32 scratch lives during its node only.
(3) Greedy best-fit: buffers in decreasing size each take the smallest gap,
between buffers whose lifetimes overlap theirs, that holds them, or go on
top. Offsets are 4-byte aligned (the scratch is int32).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Graph
from .layout import NHWC, PLANAR, assign_layouts, planar_bytes

ALIGN = 4


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Buffer:
    name: str
    size: int
    start: int
    end: int
    offset: int = -1
    tensors: list[int] = field(default_factory=list)


@dataclass
class Plan:
    arena_size: int
    buffers: list[Buffer]
    root: dict[int, int]                   # aliased tensor -> tensor owning its buffer
    tensor_buffer: dict[int, Buffer]
    scratch: dict[int, tuple[int, int]]    # node index -> (offset, size)
    notes: list[str]
    layouts: dict[int, tuple[int, int]] = field(default_factory=dict)   # buffer root -> (layout, pad)

    def layout(self, t: int) -> tuple[int, int]:
        return self.layouts.get(self.find(t), (NHWC, 0))

    def find(self, t: int) -> int:
        while t in self.root:
            t = self.root[t]
        return t

    def offset(self, t: int) -> int:
        return self.tensor_buffer[self.find(t)].offset


def _alias(graph: Graph, inplace: bool) -> tuple[dict[int, int], list[str], set[int]]:
    root: dict[int, int] = {}
    notes: list[str] = []
    reshaped: set[int] = set()

    def find(t):
        while t in root:
            t = root[t]
        return t

    kept = []
    for n in graph.nodes:
        if n.kind == "RESHAPE":
            root[n.out] = find(n.in0)
            reshaped.add(n.out)
            notes.append(f"RESHAPE op {n.ops[0]} aliased (no copy)")
        else:
            kept.append(n)
    graph.nodes = kept
    last: dict[int, int] = {}
    for i, n in enumerate(kept):
        for t in n.inputs:
            last[find(t)] = i
    last[find(graph.output)] = len(kept)
    if not inplace:
        return root, notes, reshaped
    for i, n in enumerate(kept):
        if n.kind in ("ADD", "MUL"):
            cands = [("in0", n.in0)] + ([] if n.in1_const else [("in1", n.in1)])
        elif n.kind == "HARD_SWISH":
            cands = [("in0", n.in0)]
        elif n.fused_add and not n.in1_const:
            cands = [("in1", n.in1)]
        else:
            continue
        for slot, t in cands:
            r = find(t)
            converted = any(m.kind == "TO_PLANAR" and find(m.out) == r for m in kept)
            if converted and find(n.out) == find(graph.output):
                continue                       # a PLANAR buffer cannot become the NHWC model output
            if (n.dims[slot] == n.dims["out"] and last.get(r) == i and graph.size(r) == graph.size(n.out)
                    and r != find(n.out)):
                root[n.out] = r
                last[r] = last.get(n.out, i)
                notes.append(f"{n.kind} op {n.ops[-1]} writes in place over its {slot}")
                break
    return root, notes, reshaped


def plan_arena(graph: Graph, inplace: bool = True, planar: bool = True) -> Plan:
    root, notes, reshaped = _alias(graph, inplace)

    def find(t):
        while t in root:
            t = root[t]
        return t

    layouts = assign_layouts(graph, find, reshaped) if planar else {}

    def nbytes(t: int) -> int:
        kind, pad = layouts.get(find(t), (NHWC, 0))
        return graph.size(t) if kind == NHWC else planar_bytes(_dims_of(graph, t), pad)

    buffers: dict[int, Buffer] = {}

    def touch(t: int, i: int, produce: bool) -> None:
        r = find(t)
        b = buffers.setdefault(r, Buffer(f"tensor {r}", 0, i, i))
        b.size = max(b.size, nbytes(t))
        b.start, b.end = min(b.start, i), max(b.end, i)
        if t not in b.tensors:
            b.tensors.append(t)

    touch(graph.input, -1, True)
    scratch_buffers = {}
    for i, n in enumerate(graph.nodes):
        for t in n.inputs:
            touch(t, i, False)
        touch(n.out, i, True)
        if n.scratch and layouts.get(find(n.in0), (NHWC, 0))[0] == NHWC:   # NHWC kernels only
            scratch_buffers[i] = Buffer(f"scratch of node {i}", n.scratch, i, i)
        elif n.pack and layouts.get(find(n.in0), (NHWC, 0))[0] == PLANAR:    # SMLAD pack buffer
            scratch_buffers[i] = Buffer(f"pack buffer of node {i}", _align(n.pack), i, i)
    touch(graph.output, len(graph.nodes), False)
    everything = list(buffers.values()) + list(scratch_buffers.values())
    placed: list[Buffer] = []
    for b in sorted(everything, key=lambda b: (-b.size, b.start)):
        conflicts = sorted((p.offset, p.offset + p.size) for p in placed if p.start <= b.end and b.start <= p.end)
        best, pos = None, 0
        for lo, hi in conflicts:
            if lo - pos >= b.size and (best is None or lo - pos < best[0]):
                best = (lo - pos, pos)
            pos = max(pos, _align(hi))
        b.offset = best[1] if best else pos
        placed.append(b)
    size = _align(max((b.offset + b.size for b in placed), default=0))
    return Plan(size, everything, root, buffers, {i: (b.offset, b.size) for i, b in scratch_buffers.items()},
                notes, layouts)


def _dims_of(graph: Graph, t: int):
    """The 4-D NHWC shape of an activation, as the nodes see it."""
    for n in graph.nodes:
        for name, u in (("in0", n.in0), ("in1", n.in1), ("out", n.out)):
            if u == t:
                return n.dims[name]
    raise KeyError(t)
