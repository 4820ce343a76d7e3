/* Reader of the sparse weight image (docs/sparse_image.md), C11, no allocation.
 *
 * Usage:
 *     et_image_t img;
 *     if (et_image_open(&img, data, size) != ET_OK) fail();
 *     et_tensor_t t;
 *     et_image_tensor(&img, i, &t);               // i < img.tensor_count
 *     for (uint32_t o = 0, row = 0, dead = 0; o < t.channels; o++) {
 *         if (!et_channel_live(&t, o)) { out[o] = t.consts[dead++]; continue; }
 *         et_nz_iter_t it;
 *         et_nz_begin(&it, &t, row);            // row = index among the live channels
 *         uint32_t pos; int8_t w;
 *         int32_t acc = et_read_i32(t.bias + 4 * row);   // bias with -zp_in * sum(w) folded in
 *         while (et_nz_next(&it, &pos, &w) == 1) acc += w * x[pos];
 *         row++;
 *     }
 *
 * et_image_open checks the header, the CRC-32 and that every entry's
 * sections lie inside the image and agree with its flags, counts and op;
 * it then walks every live channel once, refusing a malformed stream
 * (ET_ERR_WEIGHTS) and any channel whose int32 accumulator
 * |bias| + 128 * sum|w| or requantization could overflow (ET_ERR_RANGE).
 * The iterators check every read against the channel's bounds and return
 * -1 on a malformed stream, so a corrupt image can never make them read
 * outside it (docs/sparse_image.md, section 4, lists every rule).
 */
#ifndef ET_SPARSE_IMAGE_H
#define ET_SPARSE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "et_crc32.h" /* et_crc32: the image checksum */

#define ET_IMAGE_VERSION 2u

typedef enum {
    ET_OK = 0,
    ET_ERR_SIZE,      /* shorter than its header or total_size */
    ET_ERR_MAGIC,
    ET_ERR_VERSION,
    ET_ERR_FORMAT,    /* byte order, sizes or reserved fields */
    ET_ERR_CRC,
    ET_ERR_ENTRY,     /* a directory entry is inconsistent or points outside the image */
    ET_ERR_WEIGHTS,   /* a weight stream is malformed (found while iterating) */
    ET_ERR_MODEL,     /* the op schedule is inconsistent with itself or with the image */
    ET_ERR_ARENA,     /* the arena is too small or a tensor lies outside it */
    ET_ERR_OP,        /* unknown op kind */
    ET_ERR_RANGE,     /* a channel's int32 accumulator or requantization could overflow */
} et_status_t;

enum { ET_ZERO = 0, ET_DENSE = 1, ET_BITMASK = 2, ET_DELTA8 = 3, ET_DELTA4 = 4 };
enum { ET_HAS_DEAD = 1, ET_PER_TENSOR_SCALE = 2 };
/* TFLite builtin codes of the ops whose weights an entry holds (its `op` field). */
enum { ET_TFL_CONV_2D = 3, ET_TFL_DEPTHWISE_CONV_2D = 4, ET_TFL_FULLY_CONNECTED = 9 };

typedef struct {
    const uint8_t *data;
    uint32_t size;
    uint32_t tensor_count;
} et_image_t;

typedef struct {
    uint32_t tensor_index, bias_index;
    uint8_t encoding, op, rank, channel_axis, delta_t, index_width;
    uint16_t flags;
    int32_t shape[4];
    uint32_t channels, live_channels, channel_len, nnz;
    const uint8_t *live;       /* bitmap of live channels (bit o of byte o/8), or NULL: all live */
    const uint8_t *index;      /* first offset table (u16 or u32 entries, live rows), or NULL */
    const uint8_t *index2;     /* second offset table (DELTA4), or NULL */
    const uint8_t *positions;  /* bitmap / token stream / nibble streams, or NULL */
    uint32_t positions_size;
    const int8_t *values;      /* DENSE, BITMASK, DELTA4 values, or NULL */
    const uint8_t *bias;       /* int32 LE [live]: bias - input_zero_point * sum(w) */
    const uint8_t *multiplier; /* int32 LE [live] */
    const int8_t *shift;       /* int8 [live] */
    const int8_t *consts;      /* int8 [channels - live]: output of each dead channel, or NULL */
    float input_scale, output_scale;
    int32_t input_zero_point, output_zero_point, act_min, act_max;
} et_tensor_t;

/* Iterator over the non-zeros of one output channel, in position order. */
typedef struct {
    const et_tensor_t *t;
    uint32_t pos;              /* next position to consider */
    uint32_t r, end;           /* read cursor and end in the channel's stream */
    uint32_t v, v_end;         /* value cursor and end */
    uint32_t row;              /* byte offset of the row's bitmap or dense values */
    int bad;                   /* the offset tables were inconsistent */
} et_nz_iter_t;

et_status_t et_image_open(et_image_t *img, const uint8_t *data, size_t size);
et_status_t et_image_tensor(const et_image_t *img, uint32_t i, et_tensor_t *t);
uint32_t et_index_entry(const uint8_t *table, uint8_t width, uint32_t i);
int32_t et_read_i32(const uint8_t *p);
/* 1 if output channel o has a non-zero weight (0 for o out of range). */
int et_channel_live(const et_tensor_t *t, uint32_t o);
/* Start iterating live row `row` (0 <= row < live_channels; live rows are the
 * live channels in channel order). */
void et_nz_begin(et_nz_iter_t *it, const et_tensor_t *t, uint32_t row);
/* 1: pos and value hold the next non-zero; 0: channel done; -1: malformed data. */
int et_nz_next(et_nz_iter_t *it, uint32_t *pos, int8_t *value);

#endif /* ET_SPARSE_IMAGE_H */
