/* The runtime: validates a generated model once, then runs its op schedule.
 * See et_runtime.h for usage.
 *
 * Validation is where memory safety comes from: every operand of every op
 * must lie inside the arena (or the constant pool), shapes must agree with
 * each other and with the weight tensor's directory entry, and an op whose
 * kernel reads positions other than the one it writes (conv, depthwise,
 * FC, MEAN, PAD) must not overlap its output with its inputs. Element-wise
 * ops may write over an input of the same shape (the planner's in-place
 * reuse). The kernels then run without further checks, except the weight
 * iterators', which bound every read to the tensor's own sections.
 */
#include "et_runtime.h"

#include <string.h>

#include "et_kernels.h"

#define ET_MAX_DIM 65536

static uint64_t dims_count(const et_dims_t *d) {
    return (uint64_t)d->n * (uint64_t)d->h * (uint64_t)d->w * (uint64_t)d->c;
}

static int dims_ok(const et_dims_t *d) {
    return d->n > 0 && d->h > 0 && d->w > 0 && d->c > 0 && d->n <= ET_MAX_DIM && d->h <= ET_MAX_DIM &&
           d->w <= ET_MAX_DIM && d->c <= ET_MAX_DIM && dims_count(d) <= (1u << 28);
}

static int same_dims(const et_dims_t *a, const et_dims_t *b) {
    return a->n == b->n && a->h == b->h && a->w == b->w && a->c == b->c;
}

#define ET_MAX_PAD 64

/* Bytes an operand occupies in its layout (et_runtime.h); dims_ok first. */
static uint64_t tref_bytes(const et_tref_t *t) {
    if (t->layout != ET_PLANAR) return dims_count(&t->dims);
    return (uint64_t)t->dims.c * (uint64_t)(t->dims.h + 2 * t->pad) * (uint64_t)(t->dims.w + 2 * t->pad) +
           ET_PLANAR_SLACK;
}

/* The operand fits in a region of `size` bytes. */
static int tref_ok(const et_tref_t *t, uint64_t size) {
    if (!dims_ok(&t->dims) || t->layout > ET_PLANAR) return 0;
    if (t->layout == ET_NHWC ? t->pad != 0 : (t->dims.n != 1 || t->pad > ET_MAX_PAD)) return 0;
    return (uint64_t)t->offset + tref_bytes(t) <= size;
}

static int overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn) { return a < b + bn && b < a + an; }

static int tref_overlap(const et_tref_t *a, const et_tref_t *b) {
    return overlap(a->offset, tref_bytes(a), b->offset, tref_bytes(b));
}

static int same_layout(const et_tref_t *a, const et_tref_t *b) { return a->layout == b->layout && a->pad == b->pad; }

/* An input the kernel reads element by element may be the output itself (same place, shape
 * and layout) or lie elsewhere; partial overlap is refused. */
static int inplace_ok(const et_tref_t *in, const et_tref_t *out) {
    return !tref_overlap(in, out) ||
           (in->offset == out->offset && same_dims(&in->dims, &out->dims) && same_layout(in, out));
}

/* A conv on a PLANAR input reads, for each tap at byte offset `off` from the
 * window origin, bytes up to off + last(): check that stays in in0's buffer. */
static uint64_t planar_reach(const et_op_t *op) {
    const et_conv_params_t *c = &op->p.conv;
    const uint64_t wp = (uint64_t)op->in0.dims.w + 2u * op->in0.pad;
    const uint64_t quads = ((uint64_t)op->out.dims.w + 3u) / 4u, sw = c->stride_w;
    const uint64_t span = sw == 1 ? 3u : sw == 2 ? 7u : 3u * sw;
    return (uint64_t)(op->out.dims.h - 1) * c->stride_h * wp + (quads - 1u) * 4u * sw + span;
}

/* Tap tables and padding of a conv on a PLANAR input (et_kernels_fast.c). */
static et_status_t check_planar_conv(const et_op_t *op, const et_tensor_t *w) {
    const et_conv_params_t *c = &op->p.conv;
    const et_dims_t *i = &op->in0.dims, *o = &op->out.dims;
    const int32_t p = op->in0.pad;
    if (c->pad_top < 0 || c->pad_left < 0 || c->pad_top > p || c->pad_left > p ||
        (o->h - 1) * c->stride_h - c->pad_top + c->kernel_h > i->h + p ||
        (o->w - 1) * c->stride_w - c->pad_left + c->kernel_w > i->w + p)
        return ET_ERR_MODEL;                   /* every tap must read the input or its border */
    const uint64_t bytes = tref_bytes(&op->in0), reach = planar_reach(op);
    const uint64_t wp = (uint64_t)i->w + 2u * p, plane = (uint64_t)(i->h + 2 * p) * wp;
    if (!op->taps) {                           /* dense: the image's DENSE values, implicit offsets */
        const uint64_t chans = op->kind == ET_OP_DEPTHWISE_CONV_2D ? (uint64_t)i->c : 1u;
        const uint64_t last = (uint64_t)(p - c->pad_top + c->kernel_h - 1) * wp +
                              (uint64_t)(p - c->pad_left + c->kernel_w - 1) +
                              (uint64_t)(op->kind == ET_OP_DEPTHWISE_CONV_2D ? 0 : i->c - 1) * plane;
        return w->encoding == ET_DENSE && (chans - 1u) * plane + last + reach < bytes ? ET_OK : ET_ERR_MODEL;
    }
    const et_taps_t *t = op->taps;
    if (!t->index || (t->count && !t->taps) || t->rows != w->live_channels || t->index[0] != 0 ||
        t->index[t->rows] != t->count)
        return ET_ERR_MODEL;
    /* Every row ends with its sentinel and holds none before it. */
    for (uint32_t r = 0; r < t->rows; r++) {
        if (t->index[r] >= t->index[r + 1] || t->taps[t->index[r + 1] - 1] != ET_TAP_END) return ET_ERR_MODEL;
        for (uint32_t k = t->index[r]; k + 1 < t->index[r + 1]; k++)
            if (t->taps[k] == ET_TAP_END) return ET_ERR_MODEL;
    }
    /* Depthwise taps are relative to their channel's plane: the last plane bounds them. */
    const uint64_t limit = bytes - (op->kind == ET_OP_DEPTHWISE_CONV_2D ? (uint64_t)(i->c - 1) * plane : 0u);
    for (uint32_t k = 0; k < t->count; k++)
        if (t->taps[k] != ET_TAP_END && (uint64_t)(t->taps[k] >> 8) + reach >= limit) return ET_ERR_MODEL;
    return ET_OK;
}

static int shift_ok(int32_t s, int32_t lo, int32_t hi) { return s >= lo && s <= hi; }

static int add_params_ok(const et_add_params_t *p) {
    return p->left_shift >= 0 && p->left_shift <= 20 && shift_ok(p->in1_shift, -31, 0) &&
           shift_ok(p->in2_shift, -31, 0) && shift_ok(p->out_shift, -31, 0);
}

static int broadcastable(const et_dims_t *in, const et_dims_t *out) {
    return (in->n == out->n || in->n == 1) && (in->h == out->h || in->h == 1) &&
           (in->w == out->w || in->w == 1) && (in->c == out->c || in->c == 1);
}

/* Conv-family checks against the weight tensor's directory entry. */
static et_status_t check_weights(const et_runtime_t *rt, const et_op_t *op, et_tensor_t *w) {
    if (op->weights >= rt->image.tensor_count) return ET_ERR_MODEL;
    et_status_t s = et_image_tensor(&rt->image, op->weights, w);
    if (s != ET_OK) return s;
    const et_dims_t *i = &op->in0.dims, *o = &op->out.dims;
    const et_conv_params_t *c = &op->p.conv;
    /* The kernels loop over o->c output channels, reading live rows and dead constants. */
    if (w->channels != (uint32_t)o->c) return ET_ERR_MODEL;
    if (op->kind == ET_OP_FULLY_CONNECTED)
        return w->op == 9 && w->rank == 2 && w->shape[0] == o->c && w->shape[1] == i->c && i->h == 1 &&
               i->w == 1 && o->h == 1 && o->w == 1 && i->n == o->n ? ET_OK : ET_ERR_MODEL;
    if (c->stride_h < 1 || c->stride_w < 1 || c->kernel_h < 1 || c->kernel_w < 1 || i->n != o->n)
        return ET_ERR_MODEL;
    if (op->in0.layout == ET_NHWC &&
        ((uint64_t)op->scratch_size < 4u * (uint64_t)o->h * (uint64_t)o->w || op->scratch_offset % 4))
        return ET_ERR_MODEL;
    /* A PLANAR conv's scratch is the SMLAD kernel's pack buffer: all of it, 4-aligned. */
    if (op->in0.layout == ET_PLANAR && op->scratch_size &&
        (op->scratch_size < et_planar_pack_bytes(op) || !et_planar_pack_bytes(op) || op->scratch_offset % 4))
        return ET_ERR_MODEL;
    if (op->kind == ET_OP_CONV_2D)
        return w->op == 3 && w->rank == 4 && w->shape[0] == o->c && w->shape[1] == c->kernel_h &&
               w->shape[2] == c->kernel_w && w->shape[3] == i->c ? ET_OK : ET_ERR_MODEL;
    return w->op == 4 && w->rank == 4 && w->shape[0] == 1 && w->shape[1] == c->kernel_h &&
           w->shape[2] == c->kernel_w && w->shape[3] == o->c && i->c == o->c ? ET_OK : ET_ERR_MODEL;
}

static et_status_t check_op(const et_runtime_t *rt, const et_op_t *op) {
    const et_model_t *m = rt->model;
    const uint64_t arena = m->arena_size;
    const int has_in1 = op->kind == ET_OP_ADD || op->kind == ET_OP_MUL || (op->flags & ET_FUSED_ADD);
    if (op->kind < ET_OP_CONV_2D || op->kind > ET_OP_TO_PLANAR) return ET_ERR_OP;
    if (op->flags & ~(ET_IN1_CONST | ET_FUSED_ADD)) return ET_ERR_MODEL;
    if (!tref_ok(&op->in0, arena) || !tref_ok(&op->out, arena)) return ET_ERR_ARENA;
    if (has_in1 && !tref_ok(&op->in1, (op->flags & ET_IN1_CONST) ? m->consts_size : arena)) return ET_ERR_ARENA;
    if (op->scratch_size && (uint64_t)op->scratch_offset + op->scratch_size > arena) return ET_ERR_ARENA;
    const et_tref_t scratch = {op->scratch_offset, {1, 1, 1, (int32_t)(op->scratch_size ? op->scratch_size : 1)}, ET_NHWC, 0};
    const int in1_arena = has_in1 && !(op->flags & ET_IN1_CONST);
    /* PLANAR operands: only convs (any operand), MEAN's input and TO_PLANAR's output. */
    const int planar_any = op->in0.layout != ET_NHWC || op->out.layout != ET_NHWC ||
                           (has_in1 && op->in1.layout != ET_NHWC);
    const int conv = op->kind == ET_OP_CONV_2D || op->kind == ET_OP_DEPTHWISE_CONV_2D;
    if (op->add_lut && (!conv || !(op->flags & ET_FUSED_ADD) || op->in0.layout != ET_PLANAR)) return ET_ERR_MODEL;
    if ((!conv && op->taps) || (has_in1 && (op->flags & ET_IN1_CONST) && op->in1.layout != ET_NHWC))
        return ET_ERR_MODEL;
    if (planar_any && !conv && op->kind != ET_OP_MEAN && op->kind != ET_OP_TO_PLANAR) return ET_ERR_MODEL;
    et_tensor_t w;
    switch (op->kind) {
    case ET_OP_CONV_2D:
    case ET_OP_DEPTHWISE_CONV_2D:
    case ET_OP_FULLY_CONNECTED: {
        et_status_t s = check_weights(rt, op, &w);
        if (s != ET_OK) return s;
        if (op->kind == ET_OP_FULLY_CONNECTED && planar_any) return ET_ERR_MODEL;
        if (conv && op->in0.layout == ET_PLANAR) {
            if ((s = check_planar_conv(op, &w)) != ET_OK) return s;
        } else if (planar_any || op->taps) {
            return ET_ERR_MODEL;               /* the NHWC kernels read and write NHWC only */
        }
        if (tref_overlap(&op->in0, &op->out)) return ET_ERR_MODEL;
        if (op->kind != ET_OP_FULLY_CONNECTED && op->scratch_size &&
            (tref_overlap(&scratch, &op->in0) || tref_overlap(&scratch, &op->out) ||
             (in1_arena && tref_overlap(&scratch, &op->in1))))
            return ET_ERR_MODEL;
        if (op->flags & ET_FUSED_ADD)
            return op->kind != ET_OP_FULLY_CONNECTED && same_dims(&op->in1.dims, &op->out.dims) &&
                   add_params_ok(&op->p.conv.add) &&
                   (!in1_arena || (inplace_ok(&op->in1, &op->out) && !tref_overlap(&op->in1, &op->in0)))
                   ? ET_OK : ET_ERR_MODEL;
        return ET_OK;
    }
    case ET_OP_ADD:
    case ET_OP_MUL:
        return broadcastable(&op->in0.dims, &op->out.dims) && broadcastable(&op->in1.dims, &op->out.dims) &&
               inplace_ok(&op->in0, &op->out) && (!in1_arena || inplace_ok(&op->in1, &op->out)) &&
               (op->kind == ET_OP_MUL ? shift_ok(op->p.mul.out_shift, -31, 30) : add_params_ok(&op->p.add))
               ? ET_OK : ET_ERR_MODEL;
    case ET_OP_HARD_SWISH:
        return same_dims(&op->in0.dims, &op->out.dims) && inplace_ok(&op->in0, &op->out) &&
               op->p.hswish.out_exponent <= 0 && op->p.hswish.out_exponent >= -15 &&
               op->p.hswish.relu_exponent >= -15 && op->p.hswish.relu_exponent <= 15 ? ET_OK : ET_ERR_MODEL;
    case ET_OP_TO_PLANAR:
        return op->in0.layout == ET_NHWC && op->out.layout == ET_PLANAR && same_dims(&op->in0.dims, &op->out.dims) &&
               !tref_overlap(&op->in0, &op->out) && op->p.pad.value >= INT8_MIN && op->p.pad.value <= INT8_MAX
               ? ET_OK : ET_ERR_MODEL;
    case ET_OP_MEAN:
        return op->out.layout == ET_NHWC && op->in0.dims.n == op->out.dims.n && op->in0.dims.c == op->out.dims.c && op->out.dims.h == 1 &&
               op->out.dims.w == 1 && !tref_overlap(&op->in0, &op->out) &&
               op->p.mean.count == op->in0.dims.h * op->in0.dims.w && shift_ok(op->p.mean.shift, -31, 30)
               ? ET_OK : ET_ERR_MODEL;
    case ET_OP_PAD: {
        const et_dims_t *i = &op->in0.dims, *o = &op->out.dims, *b = &op->p.pad.before;
        return b->n >= 0 && b->h >= 0 && b->w >= 0 && b->c >= 0 && b->n + i->n <= o->n && b->h + i->h <= o->h &&
               b->w + i->w <= o->w && b->c + i->c <= o->c && !tref_overlap(&op->in0, &op->out) &&
               op->p.pad.value >= INT8_MIN && op->p.pad.value <= INT8_MAX ? ET_OK : ET_ERR_MODEL;
    }
    case ET_OP_COPY:
        return dims_count(&op->in0.dims) == dims_count(&op->out.dims) ? ET_OK : ET_ERR_MODEL;
    default:
        return ET_ERR_OP;
    }
}

et_status_t et_runtime_init(et_runtime_t *rt, const et_model_t *model, uint8_t *arena, size_t arena_size) {
    memset(rt, 0, sizeof *rt);
    rt->model = model;
    rt->arena = arena;
    if (((uintptr_t)arena & 3u) || arena_size < model->arena_size) return ET_ERR_ARENA;
    et_status_t s = et_image_open(&rt->image, model->image, model->image_size);
    if (s != ET_OK) return s;
    if (!tref_ok(&model->input, model->arena_size) || !tref_ok(&model->output, model->arena_size) ||
        model->input.layout != ET_NHWC || model->output.layout != ET_NHWC ||
        dims_count(&model->input.dims) != model->input_bytes || dims_count(&model->output.dims) != model->output_bytes)
        return ET_ERR_ARENA;
    for (uint32_t i = 0; i < model->op_count; i++) {
        rt->failed_op = i;
        s = check_op(rt, &model->ops[i]);
        if (s != ET_OK) return s;
    }
    rt->failed_op = 0;
    return ET_OK;
}

static et_status_t run_op(et_runtime_t *rt, const et_op_t *op) {
    uint8_t *a = rt->arena;
    const int8_t *in0 = (const int8_t *)(a + op->in0.offset);
    const int8_t *in1 = (const int8_t *)((op->flags & ET_IN1_CONST) ? rt->model->consts : a) + op->in1.offset;
    int8_t *out = (int8_t *)(a + op->out.offset);
    int32_t *scratch = (int32_t *)(void *)(a + op->scratch_offset);
    const int8_t *residual = (op->flags & ET_FUSED_ADD) ? in1 : 0;
    et_tensor_t w;
    if (op->weights != ET_NO_WEIGHTS) {
        et_status_t s = et_image_tensor(&rt->image, op->weights, &w);
        if (s != ET_OK) return s;
    }
    switch (op->kind) {
    case ET_OP_CONV_2D:
        return op->in0.layout == ET_PLANAR ? et_conv_planar(op, &w, in0, out, residual, 0, (uint8_t *)scratch)
                                           : et_conv2d(op, &w, in0, out, scratch, residual);
    case ET_OP_DEPTHWISE_CONV_2D:
        return op->in0.layout == ET_PLANAR ? et_conv_planar(op, &w, in0, out, residual, 1, (uint8_t *)scratch)
                                           : et_depthwise_conv2d(op, &w, in0, out, scratch, residual);
    case ET_OP_TO_PLANAR: et_to_planar(op, in0, out); return ET_OK;
    case ET_OP_FULLY_CONNECTED: return et_fully_connected(op, &w, in0, out);
    case ET_OP_ADD: et_add(op, in0, in1, out); return ET_OK;
    case ET_OP_MUL: et_mul(op, in0, in1, out); return ET_OK;
    case ET_OP_HARD_SWISH: et_hard_swish(op, in0, out); return ET_OK;
    case ET_OP_MEAN: et_mean(op, in0, out); return ET_OK;
    case ET_OP_PAD: et_pad(op, in0, out); return ET_OK;
    case ET_OP_COPY: memmove(out, in0, (size_t)dims_count(&op->out.dims)); return ET_OK;
    default: return ET_ERR_OP;
    }
}

et_status_t et_runtime_invoke(et_runtime_t *rt) {
    for (uint32_t i = 0; i < rt->model->op_count; i++) {
        if (rt->op_hook) rt->op_hook(rt->op_hook_ctx, i, 0);
        et_status_t s = run_op(rt, &rt->model->ops[i]);
        if (rt->op_hook) rt->op_hook(rt->op_hook_ctx, i, 1);
        if (s != ET_OK) { rt->failed_op = i; return s; }
    }
    return ET_OK;
}

int8_t *et_runtime_input(const et_runtime_t *rt) { return (int8_t *)(rt->arena + rt->model->input.offset); }

const int8_t *et_runtime_output(const et_runtime_t *rt) {
    return (const int8_t *)(rt->arena + rt->model->output.offset);
}

const char *et_status_name(et_status_t status) {
    static const char *const names[] = {"ok", "image size", "image magic", "image version", "image format",
                                        "image CRC", "image entry", "weight stream", "model schedule",
                                        "arena", "unknown op", "accumulator range"};
    return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "unknown status";
}
