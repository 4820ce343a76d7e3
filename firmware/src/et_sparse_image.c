/* Reader of the sparse weight image: header and CRC check, entry parsing,
 * per-channel iteration of non-zeros for each encoding. See
 * docs/sparse_image.md for the format and et_sparse_image.h for usage.
 *
 * Every multi-byte field is read byte by byte (little-endian), so the code
 * is endian- and alignment-independent; on the Cortex-M7 the compiler turns
 * these loads into single LDR instructions.
 */
#include "et_sparse_image.h"

#include <string.h>

#define ET_HEADER_SIZE 32u
#define ET_ENTRY_SIZE 104u
#define ET_MAX_ELEMENTS (1u << 28)

static uint32_t rd_u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd_u32(const uint8_t *p) { return rd_u16(p) | rd_u16(p + 2) << 16; }
int32_t et_read_i32(const uint8_t *p) { uint32_t u = rd_u32(p); int32_t s; memcpy(&s, &u, 4); return s; }
static float rd_f32(const uint8_t *p) { uint32_t u = rd_u32(p); float f; memcpy(&f, &u, 4); return f; }


uint32_t et_index_entry(const uint8_t *table, uint8_t width, uint32_t i) {
    return width == 2 ? rd_u16(table + 2u * i) : rd_u32(table + 4u * i);
}

#define ET_REQUANT_LIMIT (INT32_MAX - 128)   /* room for + output_zero_point */

/* Walks every live row once: the stream must decode, and no int32 arithmetic the
 * kernels do on the row may overflow. A conv/FC accumulator starts at the folded
 * bias and adds, per non-zero w, one product w * x with x a raw int8 input or the
 * input zero point, so |acc| <= |bias| + 128 * sum|w| at every step; that bound
 * must fit in int32. Requantization (et_mbqm) shifts acc left by max(shift, 0),
 * wrapping, and |SaturatingRoundingDoublingHighMul(x, m)| <= min(|x|, |m|) for
 * m >= 0, so its result plus the output zero point stays in int32 when
 * m <= INT32_MAX - 128, or else when the shifted bound does. */
static et_status_t check_rows(const et_tensor_t *t) {
    for (uint32_t r = 0; r < t->live_channels; r++) {
        et_nz_iter_t it;
        uint32_t pos;
        int8_t v;
        int rc;
        uint64_t sum = 0;
        et_nz_begin(&it, t, r);
        while ((rc = et_nz_next(&it, &pos, &v)) == 1) sum += (uint64_t)(v < 0 ? -(int32_t)v : v);
        if (rc < 0) return ET_ERR_WEIGHTS;
        const int64_t bias = et_read_i32(t->bias + 4u * r), mult = et_read_i32(t->multiplier + 4u * r);
        const uint64_t bound = (uint64_t)(bias < 0 ? -bias : bias) + 128u * sum;
        const int left = t->shift[r] > 0 ? t->shift[r] : 0;
        if (bound > INT32_MAX || mult < 0) return ET_ERR_RANGE;
        if (mult > ET_REQUANT_LIMIT && (bound << left) > ET_REQUANT_LIMIT) return ET_ERR_RANGE;
    }
    return ET_OK;
}

et_status_t et_image_open(et_image_t *img, const uint8_t *data, size_t size) {
    if (size < ET_HEADER_SIZE) return ET_ERR_SIZE;
    if (memcmp(data, "ETSW", 4) != 0) return ET_ERR_MAGIC;
    if (rd_u16(data + 4) != ET_IMAGE_VERSION) return ET_ERR_VERSION;
    if (rd_u16(data + 6) != ET_HEADER_SIZE || rd_u16(data + 8) != 0x0102u ||
        rd_u16(data + 10) != ET_ENTRY_SIZE || rd_u32(data + 12) != 0 || rd_u32(data + 28) != 0)
        return ET_ERR_FORMAT;
    uint32_t total = rd_u32(data + 20), count = rd_u32(data + 16);
    if (total != size) return ET_ERR_SIZE;
    if (et_crc32(data + ET_HEADER_SIZE, size - ET_HEADER_SIZE) != rd_u32(data + 24)) return ET_ERR_CRC;
    if ((uint64_t)ET_HEADER_SIZE + (uint64_t)ET_ENTRY_SIZE * count > size) return ET_ERR_ENTRY;
    img->data = data;
    img->size = total;
    img->tensor_count = count;
    for (uint32_t i = 0; i < count; i++) {
        et_tensor_t t;
        et_status_t s = et_image_tensor(img, i, &t);
        if (s == ET_OK) s = check_rows(&t);
        if (s != ET_OK) return s;
    }
    return ET_OK;
}

/* The section at offset `off` of `size` bytes, or NULL if it does not fit. A section is
 * present (offset != 0) exactly when its size is not zero: a stray offset of an absent
 * section (e.g. a live bitmap without ET_HAS_DEAD) would otherwise reach the kernels. */
static const uint8_t *section(const et_image_t *img, uint32_t off, uint64_t size, int *ok) {
    if (off == 0 || size == 0) { *ok = *ok && off == 0 && size == 0; return NULL; }
    if (off % 4 != 0 || off < ET_HEADER_SIZE || (uint64_t)off + size > img->size) { *ok = 0; return NULL; }
    return img->data + off;
}

/* The channel axis must be the one the op's kernel indexes output channels by:
 * axis 0 of CONV_2D [O,KH,KW,I] and FULLY_CONNECTED [O,I], the last axis of
 * DEPTHWISE_CONV_2D [1,KH,KW,C]. Any other axis is a self-consistent entry
 * whose rows the kernel would read as the wrong channels. */
static int op_axis_ok(uint8_t op, uint8_t rank, uint8_t axis) {
    if (op == ET_TFL_CONV_2D || op == ET_TFL_FULLY_CONNECTED) return axis == 0;
    return op == ET_TFL_DEPTHWISE_CONV_2D && axis == rank - 1;
}

/* Number of set bits among the first n bits of a little-endian bitmap. */
static uint32_t popcount_bits(const uint8_t *bits, uint32_t n) {
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++) count += (uint32_t)(bits[i >> 3] >> (i & 7)) & 1u;
    return count;
}

et_status_t et_image_tensor(const et_image_t *img, uint32_t i, et_tensor_t *t) {
    if (i >= img->tensor_count) return ET_ERR_ENTRY;
    const uint8_t *e = img->data + ET_HEADER_SIZE + ET_ENTRY_SIZE * i;
    memset(t, 0, sizeof *t);
    t->tensor_index = rd_u32(e);
    t->bias_index = rd_u32(e + 4);
    t->encoding = e[8]; t->op = e[9]; t->rank = e[10]; t->channel_axis = e[11];
    t->delta_t = e[12]; t->index_width = e[13]; t->flags = (uint16_t)rd_u16(e + 14);
    for (int d = 0; d < 4; d++) t->shape[d] = et_read_i32(e + 16 + 4 * d);
    t->channels = rd_u32(e + 32); t->live_channels = rd_u32(e + 36);
    t->channel_len = rd_u32(e + 40); t->nnz = rd_u32(e + 44);
    uint64_t c = t->channels, live = t->live_channels, k = t->channel_len, w = t->index_width;
    int has_dead = (t->flags & ET_HAS_DEAD) != 0;
    if (t->encoding > ET_DELTA4 || t->rank < 1 || t->rank > 4 || t->channel_axis >= t->rank ||
        c == 0 || c * k > ET_MAX_ELEMENTS || live > c || has_dead != (live < c) ||
        (t->encoding == ET_ZERO) != (live == 0) || t->nnz > live * k || t->nnz < live ||
        (t->encoding == ET_DELTA8 && t->delta_t == 0) || (t->flags & ~3u))
        return ET_ERR_ENTRY;
    /* The shape must be what channels x channel_len describe: kernels index inputs by position. */
    uint64_t count = 1;
    for (int d = 0; d < t->rank; d++) {
        if (t->shape[d] < 1 || t->shape[d] > (int32_t)ET_MAX_ELEMENTS) return ET_ERR_ENTRY;
        count *= (uint64_t)t->shape[d];
        if (count > ET_MAX_ELEMENTS) return ET_ERR_ENTRY;
    }
    if (count != c * k || (uint64_t)t->shape[t->channel_axis] != c) return ET_ERR_ENTRY;
    if (!op_axis_ok(t->op, t->rank, t->channel_axis)) return ET_ERR_ENTRY;
    int has_table = t->encoding >= ET_BITMASK;
    if (has_table ? (w != 2 && w != 4) : w != 0) return ET_ERR_ENTRY;
    t->positions_size = rd_u32(e + 60);
    if (!has_table && t->positions_size) return ET_ERR_ENTRY;
    uint64_t values = t->encoding == ET_DENSE ? live * k
                      : (t->encoding == ET_BITMASK || t->encoding == ET_DELTA4) ? t->nnz : 0;
    int ok = 1;
    t->index = section(img, rd_u32(e + 48), has_table ? (live + 1) * w : 0, &ok);
    t->index2 = section(img, rd_u32(e + 52), t->encoding == ET_DELTA4 ? (live + 1) * w : 0, &ok);
    t->positions = section(img, rd_u32(e + 56), t->positions_size, &ok);
    t->values = (const int8_t *)section(img, rd_u32(e + 64), values, &ok);
    t->live = section(img, rd_u32(e + 68), has_dead ? (c + 7) / 8 : 0, &ok);
    t->bias = section(img, rd_u32(e + 72), 4 * live, &ok);
    t->multiplier = section(img, rd_u32(e + 76), 4 * live, &ok);
    t->shift = (const int8_t *)section(img, rd_u32(e + 80), live, &ok);
    t->consts = (const int8_t *)section(img, rd_u32(e + 84), c - live, &ok);
    /* Present sections must be present: a NULL pointer with a non-zero size fails above. */
    if (!ok || (has_table && !t->index) || (values && !t->values) || (live && !t->bias) ||
        (has_dead && (!t->live || !t->consts)))
        return ET_ERR_ENTRY;
    if (has_dead && popcount_bits(t->live, (uint32_t)c) != live) return ET_ERR_ENTRY;
    if (t->encoding == ET_BITMASK && t->positions_size != live * ((k + 7) / 8)) return ET_ERR_ENTRY;
    if (has_table && (et_index_entry(t->index, t->index_width, (uint32_t)live) !=
                      (t->encoding == ET_DELTA8 ? t->positions_size : t->nnz)))
        return ET_ERR_ENTRY;
    if (t->encoding == ET_DELTA4 && et_index_entry(t->index2, t->index_width, (uint32_t)live) != t->positions_size)
        return ET_ERR_ENTRY;
    t->input_scale = rd_f32(e + 88); t->output_scale = rd_f32(e + 92);
    t->input_zero_point = (int8_t)e[96]; t->output_zero_point = (int8_t)e[97];
    t->act_min = (int8_t)e[98]; t->act_max = (int8_t)e[99];
    if (t->act_min > t->act_max) return ET_ERR_ENTRY;
    /* Kernels shift by these amounts: keep them where the fixed-point helpers are defined. */
    for (uint32_t r = 0; r < t->live_channels; r++)
        if (t->shift[r] < -31 || t->shift[r] > 30) return ET_ERR_ENTRY;
    return ET_OK;
}

int et_channel_live(const et_tensor_t *t, uint32_t o) {
    if (o >= t->channels) return 0;
    return t->live ? (t->live[o >> 3] >> (o & 7)) & 1 : 1;
}

void et_nz_begin(et_nz_iter_t *it, const et_tensor_t *t, uint32_t o) {
    memset(it, 0, sizeof *it);
    it->t = t;
    if (o >= t->live_channels) { it->bad = 1; return; }
    uint8_t w = t->index_width;
    if (t->encoding == ET_DENSE) {
        it->row = o * t->channel_len;
    } else if (t->encoding == ET_BITMASK || t->encoding == ET_DELTA4) {
        it->v = et_index_entry(t->index, w, o);
        it->v_end = et_index_entry(t->index, w, o + 1);
        it->row = o * ((t->channel_len + 7) / 8);
        if (t->encoding == ET_DELTA4) {   /* r, end count nibbles */
            it->r = 2 * et_index_entry(t->index2, w, o);
            it->end = 2 * et_index_entry(t->index2, w, o + 1);
        }
    } else if (t->encoding == ET_DELTA8) {
        it->r = et_index_entry(t->index, w, o);
        it->end = et_index_entry(t->index, w, o + 1);
    }
    if (it->v > it->v_end || it->v_end > t->nnz || it->r > it->end || it->end > 2 * t->positions_size)
        it->bad = 1;
    if (t->encoding == ET_DELTA8 && it->end > t->positions_size) it->bad = 1;
}

static int next_dense(et_nz_iter_t *it, uint32_t *pos, int8_t *value) {
    const et_tensor_t *t = it->t;
    for (; it->pos < t->channel_len; it->pos++) {
        int8_t x = t->values[it->row + it->pos];
        if (x != 0) { *pos = it->pos++; *value = x; return 1; }
    }
    return 0;
}

static int next_bitmask(et_nz_iter_t *it, uint32_t *pos, int8_t *value) {
    const et_tensor_t *t = it->t;
    for (; it->pos < t->channel_len; it->pos++) {
        if (t->positions[it->row + (it->pos >> 3)] >> (it->pos & 7) & 1u) {
            if (it->v >= it->v_end) return -1;
            *pos = it->pos++; *value = t->values[it->v++];
            return 1;
        }
    }
    return it->v == it->v_end ? 0 : -1;
}

static int next_delta8(et_nz_iter_t *it, uint32_t *pos, int8_t *value) {
    const uint8_t *s = it->t->positions;
    if (it->r >= it->end) return 0;
    uint32_t b = s[it->r], T = it->t->delta_t, n = b < T ? 1u : b < 255u ? 2u : 3u, gap;
    if (it->r + n >= it->end) return -1;       /* the code and its value must fit */
    if (n == 1) gap = b;
    else if (n == 2) gap = T + ((b - T) << 8 | s[it->r + 1]);
    else gap = s[it->r + 1] | (uint32_t)s[it->r + 2] << 8;
    it->r += n;
    it->pos += gap;
    if (it->pos >= it->t->channel_len) return -1;
    *pos = it->pos++;
    *value = (int8_t)s[it->r++];
    return 1;
}

static int next_delta4(et_nz_iter_t *it, uint32_t *pos, int8_t *value) {
    const et_tensor_t *t = it->t;
    if (it->v == it->v_end) return 0;
    for (;;) {
        if (it->r >= it->end) return -1;
        uint32_t nib = t->positions[it->r >> 1] >> (4 * (it->r & 1)) & 15u;
        it->r++;
        it->pos += nib;
        if (it->pos >= t->channel_len) return -1;
        if (nib != 15) break;
    }
    *pos = it->pos++;
    *value = t->values[it->v++];
    return 1;
}

int et_nz_next(et_nz_iter_t *it, uint32_t *pos, int8_t *value) {
    if (it->bad) return -1;
    switch (it->t->encoding) {
    case ET_ZERO: return 0;
    case ET_DENSE: return next_dense(it, pos, value);
    case ET_BITMASK: return next_bitmask(it, pos, value);
    case ET_DELTA8: return next_delta8(it, pos, value);
    case ET_DELTA4: return next_delta4(it, pos, value);
    default: return -1;
    }
}
