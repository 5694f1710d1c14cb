/* le.h — little-endian loads and stores at any alignment, one byte at a time. */
#ifndef LDM_LE_H
#define LDM_LE_H

#include <stdint.h>

static inline uint16_t ldm_le16(const void *p)
{
    const unsigned char *b = p;
    return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t ldm_le32(const void *p)
{
    const unsigned char *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static inline uint64_t ldm_le64(const void *p)
{
    const unsigned char *b = p;
    return (uint64_t)ldm_le32(b) | (uint64_t)ldm_le32(b + 4) << 32;
}

static inline void ldm_put16(void *p, uint16_t v)
{
    unsigned char *b = p;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
}

static inline void ldm_put32(void *p, uint32_t v)
{
    unsigned char *b = p;
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

static inline void ldm_put64(void *p, uint64_t v)
{
    ldm_put32(p, (uint32_t)v);
    ldm_put32((unsigned char *)p + 4, (uint32_t)(v >> 32));
}

#endif
