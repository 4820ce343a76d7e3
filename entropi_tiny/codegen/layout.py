"""Activation layouts and conv kernel choice: which tensors are PLANAR, which convs run which kernel.

Usage:
    insert_to_planar(graph)                    # after fuse(), before plan_arena()
    layouts = assign_layouts(graph, find)      # plan_arena calls it: {buffer root: (layout, pad)}
    choose_kernels(graph, layouts, find, image_tensors)   # sets node.kernel, node.kernel_reason, node.pack
    words, index = tap_table(node, layouts, find, tensor)

The fast conv kernels (firmware/src/et_kernels_fast.c) read a PLANAR input:
C planes of (H+2P) x (W+2P) bytes whose border of P pixels holds the zero
point, so each tap of a tile of output pixels is one word load and no tap
needs a border test. A tensor is PLANAR when every op touching it can
handle that: it is produced by a conv that itself reads a PLANAR input (or
by the TO_PLANAR op that converts the model input), and it is read only as
a conv's input, a fused ADD's residual, or MEAN's input; the model input
and output stay NHWC. P is the largest padding any consumer needs. The
rules are applied to a fixpoint over the planner's alias groups (a tensor
and those written in place over it share one buffer and one layout).

Kernel choice for a conv on a PLANAR input (the cost model, in
instructions per tile of 8 output pixels, measured on the twin): a sparse
tap costs ~TAP_SPARSE (word load of the tap, two data words, four SXTB16,
eight SMLAxy, loop), a dense weight ~TAP_DENSE when non-zero plus
ZERO_DENSE to skip a zero; dense needs the weights DENSE-encoded in the
image and costs no flash, the tap table costs 4 bytes per non-zero.
A dense CONV_2D whose input channels come in fours runs the SMLAD kernel
instead (2 MACs per instruction, ~TAP_SMLAD per weight and tile, zeros
included) on its input packed into int16 pairs in an arena scratch of
pack_bytes(node) (node.pack; the planner is run again once kernels are chosen).
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .fuse import CONVS
from .graph import Graph, Node

NHWC, PLANAR = 0, 1
SLACK = 16                     # ET_PLANAR_SLACK: bytes the word loads may read past the last plane
TAP_SPARSE, TAP_DENSE, ZERO_DENSE = 27.0, 24.0, 6.0
TAP_SMLAD = 9.5                # 38 instructions per 4 weights of 8 lanes
SMLAD_STEPS = (8, 16, 32, 64, 128, 256, 512)   # lane steps (bytes) the firmware has instances for
MAX_OFFSET = (1 << 24) - 2           # 0xFFFFFF with weight -1 would be the row sentinel
TAP_END = 0xFFFFFFFF


def planar_bytes(dims, pad: int) -> int:
    n, h, w, c = dims
    return c * (h + 2 * pad) * (w + 2 * pad) + SLACK


def conv_pads(node: Node) -> int:
    """The border a conv needs around its input: the largest of its four paddings."""
    p = node.params
    (_, ih, iw, _), (_, oh, ow, _) = node.dims["in0"], node.dims["out"]
    bottom = (oh - 1) * p["stride_h"] + p["kernel_h"] - p["pad_top"] - ih
    right = (ow - 1) * p["stride_w"] + p["kernel_w"] - p["pad_left"] - iw
    return max(p["pad_top"], p["pad_left"], bottom, right, 0)


def insert_to_planar(graph: Graph) -> None:
    """Convert the model input once (TO_PLANAR) when only convs read it."""
    users = [n for n in graph.nodes if graph.input in n.inputs]
    if not users or any(n.kind not in CONVS or (n.in0 != graph.input and not n.fused_add) for n in users):
        return
    dims = users[0].dims["in0"]
    if dims[0] != 1:
        return
    t = graph.new_tensor(graph.input)
    node = Node("TO_PLANAR", [], graph.input, t, dims={"in0": dims, "out": dims},
                params={"before": (0, 0, 0, 0), "value": graph.quant(graph.input)[1]})
    for n in users:
        n.in0 = t if n.in0 == graph.input else n.in0
        n.in1 = t if n.in1 == graph.input and not n.in1_const else n.in1
    graph.nodes.insert(0, node)


def assign_layouts(graph: Graph, find, reshaped: set[int]) -> dict[int, tuple[int, int]]:
    """{buffer root: (layout, pad)} for every activation buffer; `reshaped`: roots RESHAPE aliased."""
    uses: dict[int, list[tuple[Node, str]]] = {}
    prod: dict[int, list[Node]] = {}
    for n in graph.nodes:
        for slot, t in (("in0", n.in0), ("in1", n.in1 if not n.in1_const else None)):
            if t is not None:
                uses.setdefault(find(t), []).append((n, slot))
        prod.setdefault(find(n.out), []).append(n)
    roots = set(uses) | set(prod)
    fixed = {find(graph.input), find(graph.output)} | {find(t) for t in reshaped}
    planar = {r for r in roots if r not in fixed}

    def conv_fast(n: Node) -> bool:
        return n.kind in CONVS and find(n.in0) in planar

    changed = True
    while changed:
        changed = False
        for r in sorted(planar):
            ok = all((n.kind in CONVS and conv_fast(n)) or n.kind == "TO_PLANAR" for n in prod.get(r, []))
            ok = ok and all(d["out"][0] == 1 and d.get("in0", (1,))[0] == 1 for d in [n.dims for n in prod.get(r, [])])
            for n, slot in uses.get(r, []):
                if slot == "in0" and n.kind in CONVS:
                    continue
                if slot == "in0" and n.kind == "MEAN":
                    continue
                if slot == "in1" and n.kind in CONVS and n.fused_add and conv_fast(n):
                    continue
                ok = False
            if not ok:
                planar.discard(r)
                changed = True
    out = {}
    for r in roots:
        if r in planar:
            pad = max([conv_pads(n) for n, slot in uses.get(r, []) if slot == "in0" and n.kind in CONVS],
                      default=0)
            out[r] = (PLANAR, pad)
        else:
            out[r] = (NHWC, 0)
    return out


def pack_bytes(node: Node, layouts, find) -> int:
    """Bytes of the SMLAD kernel's pack buffer for a conv (0: the kernel does not apply); the
    same arithmetic as et_planar_pack_bytes in et_kernels_fast.c: every padded input pixel
    (2 bytes per channel), and past the grid as far as the last tile's lanes read."""
    kind, pad = layouts.get(find(node.in0), (NHWC, 0))
    _, ih, iw, ic = node.dims["in0"]
    _, oh, ow, _ = node.dims["out"]
    p = node.params
    if node.kind != "CONV_2D" or kind != PLANAR or ic % 4 or ic > 256 or \
            (p["stride_h"], p["stride_w"]) != (1, 1) or p["stride_w"] * 2 * ic not in SMLAD_STEPS:
        return 0
    wp, hp = iw + 2 * pad, ih + 2 * pad
    origin = (pad - p["pad_top"]) * wp + (pad - p["pad_left"])
    if p["stride_h"] == 1 and p["stride_w"] == 1:
        last = ((oh - 1) * wp + ow + 7) // 8 * 8 - 1
    else:
        last = (oh - 1) * p["stride_h"] * wp + ((ow + 7) // 8 * 8 - 1) * p["stride_w"]
    pixels = max(origin + last + (p["kernel_h"] - 1) * wp + p["kernel_w"], hp * wp)
    return pixels * 2 * ic


def choose_kernels(graph: Graph, layouts, find, tensors: dict) -> None:
    """node.kernel / node.kernel_reason / node.pack for every conv; `tensors`: {entry index: ImageTensor}."""
    for n in graph.nodes:
        if n.kind not in CONVS:
            continue
        if layouts.get(find(n.in0), (NHWC, 0))[0] != PLANAR:
            n.kernel, n.kernel_reason = "nhwc", "input is NHWC (read by an op the fast kernels do not feed)"
            continue
        t = tensors[n.weights]
        size, nnz = int(t.weights.size), int(t.nnz)
        sparse = nnz * TAP_SPARSE
        dense = nnz * TAP_DENSE + (size - nnz) * ZERO_DENSE if t.encoding == "DENSE" else None
        packed = pack_bytes(n, layouts, find) if t.encoding == "DENSE" else 0
        n.pack = 0
        if packed and size * TAP_SMLAD <= sparse:
            n.kernel, n.pack = "dense", packed
            n.kernel_reason = (f"density {nnz / size:.1%}: dense SMLAD {size * TAP_SMLAD:.0f} <= sparse "
                               f"{sparse:.0f} instructions per 8-pixel tile; pack buffer {packed} bytes")
        elif dense is not None and dense <= sparse:
            n.kernel = "dense"
            n.kernel_reason = (f"density {nnz / size:.1%}: dense {dense:.0f} <= sparse {sparse:.0f} "
                               f"instructions per 8-pixel tile, and no tap table in flash")
        else:
            n.kernel = "sparse"
            why = "weights not DENSE-encoded" if dense is None else f"dense {dense:.0f}"
            n.kernel_reason = (f"density {nnz / size:.1%}: sparse {sparse:.0f} instructions per 8-pixel tile "
                               f"({why}); tap table {4 * (nnz + int(t.live.sum()) + 1)} bytes")


def tap_table(node: Node, layouts, find, tensor) -> tuple[np.ndarray, np.ndarray]:
    """(tap words, row index) of a sparse conv: word = offset << 8 | (weight & 0xff), in the
    image's position order within each live row, each row ended by TAP_END."""
    _, pad = layouts[find(node.in0)]
    _, ih, iw, ic = node.dims["in0"]
    wp, plane = iw + 2 * pad, (ih + 2 * pad) * (iw + 2 * pad)
    p = node.params
    w = tensor.weights                           # [O, KH, KW, I] or [1, KH, KW, C]
    depthwise = node.kind == "DEPTHWISE_CONV_2D"
    rows = np.moveaxis(w, 3, 0) if depthwise else w   # channel-major: [O, KH, KW, I or 1]
    if depthwise:
        rows = rows.reshape(rows.shape[0], w.shape[1], w.shape[2], 1)
    words, index = [], [0]
    for o in np.flatnonzero(tensor.live):
        kh, kw, c = np.nonzero(rows[o])
        vals = rows[o][kh, kw, c].astype(np.int64)
        off = (0 if depthwise else c.astype(np.int64) * plane) + \
            (kh - p["pad_top"] + pad).astype(np.int64) * wp + (kw - p["pad_left"] + pad)
        if off.size and (off.min() < 0 or off.max() > MAX_OFFSET):
            raise UserError(f"op {node.ops[-1]}: a tap offset does not fit 24 bits")
        words.append(np.append((off << 8) | (vals & 0xFF), TAP_END))
        index.append(index[-1] + len(off) + 1)
    flat = np.concatenate(words).astype(np.uint32) if words else np.zeros(0, np.uint32)
    return flat, np.array(index, np.uint32)
