/* CRC-32 as zlib.crc32 computes it (IEEE 802.3, reflected polynomial
 * 0xEDB88320): one implementation for the sparse weight image's checksum and
 * the UART frames.
 *
 * Usage:
 *     uint32_t crc = et_crc32(data, n);                 // whole buffer
 *     crc = et_crc32_update(et_crc32_update(0, a, na), b, nb);   // in pieces
 */
#ifndef ET_CRC32_H
#define ET_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC over n more bytes; start with crc = 0. */
uint32_t et_crc32_update(uint32_t crc, const uint8_t *data, size_t n);

/* The CRC of one buffer. */
uint32_t et_crc32(const uint8_t *data, size_t n);

#endif /* ET_CRC32_H */
