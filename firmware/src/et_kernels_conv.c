/* Sparse int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, reading the
 * weights in place from the sparse image (et_sparse_image.h).
 *
 * Loop order: output channel -> its non-zero weights -> every output pixel.
 * Each channel's non-zeros are decoded once (DELTA8/DELTA4 codes cost a few
 * instructions each) and then applied to a whole plane of int32
 * accumulators in a tight strided multiply-add loop with the weight held in
 * a register. The alternative, pixel-major with a sparse dot product per
 * output pixel, decodes every channel's stream again at every pixel: at 1%
 * density that is ~5-10 decode instructions per MAC against ~4 for this
 * order's load-MLA-store inner loop, so channel-major is the faster choice
 * on a Cortex-M7 (no SIMD helps irregular sparse MACs either way). The cost
 * is an int32 scratch plane of OH*OW accumulators (4 KB for 32x32), planned
 * in the arena like any tensor.
 *
 * Zero points: the image stores bias - input_zero_point * sum(w) (folded on
 * the host), so the inner loop adds w * x on raw int8 inputs. TFLM skips
 * taps that fall in the padding, i.e. treats them as x = input_zero_point;
 * with the folded bias we must therefore add w * input_zero_point for each
 * such tap: only on the border rows/columns, O(OH + OW) per non-zero.
 * Work is proportional to the non-zeros; dead channels cost one store per
 * pixel (their output is a constant from the image).
 */
#include "et_kernels.h"

/* Output positions [lo, hi) whose tap at kernel offset k reads inside an input of in_size. */
static void valid_range(int32_t in_size, int32_t out_size, int32_t stride, int32_t pad, int32_t k,
                        int32_t *lo, int32_t *hi) {
    const int32_t a = pad - k;                 /* need a <= o * stride <= in_size - 1 + a */
    const int32_t top = in_size - 1 + a;
    int32_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int32_t h = top < 0 ? 0 : top / stride + 1;
    if (h > out_size) h = out_size;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* acc[p] += w * x for tap (kh, kw) of input channel ic at every output pixel p. */
static void accumulate_tap(const et_op_t *op, const int8_t *in, int32_t *acc, int32_t kh, int32_t kw,
                           int32_t ic, int32_t w, int32_t zp) {
    const et_conv_params_t *c = &op->p.conv;
    const int32_t iw = op->in0.dims.w, ich = op->in0.dims.c, oh = op->out.dims.h, ow = op->out.dims.w;
    int32_t y0, y1, x0, x1;
    valid_range(op->in0.dims.h, oh, c->stride_h, c->pad_top, kh, &y0, &y1);
    valid_range(iw, ow, c->stride_w, c->pad_left, kw, &x0, &x1);
    const int32_t step = c->stride_w * ich;
    for (int32_t oy = y0; oy < y1; oy++) {
        const int8_t *x = in + ((oy * c->stride_h + kh - c->pad_top) * iw + x0 * c->stride_w + kw - c->pad_left) * ich + ic;
        int32_t *a = acc + oy * ow;
        for (int32_t ox = x0; ox < x1; ox++, x += step) a[ox] += w * (int32_t)*x;
    }
    if (zp == 0 || (y0 == 0 && y1 == oh && x0 == 0 && x1 == ow)) return;
    const int32_t wz = w * zp;                 /* taps in the padding read input_zero_point */
    for (int32_t oy = 0; oy < oh; oy++) {
        int32_t *a = acc + oy * ow;
        if (oy < y0 || oy >= y1) {
            for (int32_t ox = 0; ox < ow; ox++) a[ox] += wz;
        } else {
            for (int32_t ox = 0; ox < x0; ox++) a[ox] += wz;
            for (int32_t ox = x1; ox < ow; ox++) a[ox] += wz;
        }
    }
}

/* Requantize one channel's accumulators into y[p * stride + o], then the fused ADD if any. */
static void store_channel(const et_op_t *op, const et_tensor_t *w, const int32_t *acc, int8_t *y,
                          const int8_t *r, int32_t o, int32_t pixels, int32_t stride, uint32_t row) {
    const int32_t mult = et_read_i32(w->multiplier + 4u * row), shift = w->shift[row];
    for (int32_t p = 0; p < pixels; p++) {
        int8_t v = (int8_t)et_clamp(et_mbqm(acc[p], mult, shift) + w->output_zero_point, w->act_min, w->act_max);
        y[p * stride + o] = r ? et_add_one(&op->p.conv.add, v, r[p * stride + o]) : v;
    }
}

static void store_constant(const et_op_t *op, int8_t v, int8_t *y, const int8_t *r, int32_t o,
                           int32_t pixels, int32_t stride) {
    for (int32_t p = 0; p < pixels; p++)
        y[p * stride + o] = r ? et_add_one(&op->p.conv.add, v, r[p * stride + o]) : v;
}

/* CONV_2D (depthwise = 0) and DEPTHWISE_CONV_2D with depth multiplier 1 (depthwise = 1). */
static et_status_t conv_like(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out,
                             int32_t *acc, const int8_t *residual, int depthwise) {
    const et_dims_t *id = &op->in0.dims, *od = &op->out.dims;
    const int32_t pixels = od->h * od->w, channels = od->c, kw = op->p.conv.kernel_w;
    const int32_t in_image = id->h * id->w * id->c, out_image = pixels * channels;
    for (int32_t n = 0; n < od->n; n++) {
        const int8_t *x = in + n * in_image;
        int8_t *y = out + n * out_image;
        const int8_t *r = residual ? residual + n * out_image : 0;
        uint32_t row = 0, dead = 0;
        for (int32_t o = 0; o < channels; o++) {
            if (!et_channel_live(w, (uint32_t)o)) {
                store_constant(op, w->consts[dead++], y, r, o, pixels, channels);
                continue;
            }
            const int32_t bias = et_read_i32(w->bias + 4u * row);
            for (int32_t p = 0; p < pixels; p++) acc[p] = bias;
            et_nz_iter_t it;
            uint32_t pos;
            int8_t v;
            int rc;
            et_nz_begin(&it, w, row);
            while ((rc = et_nz_next(&it, &pos, &v)) == 1) {
                const int32_t ic = depthwise ? o : (int32_t)(pos % (uint32_t)id->c);
                const int32_t tap = depthwise ? (int32_t)pos : (int32_t)(pos / (uint32_t)id->c);
                accumulate_tap(op, x, acc, tap / kw, tap % kw, ic, v, w->input_zero_point);
            }
            if (rc < 0) return ET_ERR_WEIGHTS;
            store_channel(op, w, acc, y, r, o, pixels, channels, row++);
        }
    }
    return ET_OK;
}

et_status_t et_conv2d(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out,
                      int32_t *acc, const int8_t *residual) {
    return conv_like(op, w, in, out, acc, residual, 0);
}

et_status_t et_depthwise_conv2d(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out,
                                int32_t *acc, const int8_t *residual) {
    return conv_like(op, w, in, out, acc, residual, 1);
}

/* FULLY_CONNECTED: in [N, K] (dims n = N, c = K), weights [O, K], out [N, O]. */
et_status_t et_fully_connected(const et_op_t *op, const et_tensor_t *w, const int8_t *in, int8_t *out) {
    const int32_t batches = op->in0.dims.n, k = op->in0.dims.c, channels = op->out.dims.c;
    for (int32_t n = 0; n < batches; n++) {
        const int8_t *x = in + n * k;
        uint32_t row = 0, dead = 0;
        for (int32_t o = 0; o < channels; o++) {
            if (!et_channel_live(w, (uint32_t)o)) {
                out[n * channels + o] = w->consts[dead++];
                continue;
            }
            int32_t acc = et_read_i32(w->bias + 4u * row);
            et_nz_iter_t it;
            uint32_t pos;
            int8_t v;
            int rc;
            et_nz_begin(&it, w, row);
            while ((rc = et_nz_next(&it, &pos, &v)) == 1) acc += (int32_t)v * x[pos];
            if (rc < 0) return ET_ERR_WEIGHTS;
            store_channel(op, w, &acc, out + n * channels, 0, o, 1, channels, row++);
        }
    }
    return ET_OK;
}
