/* record.h — the sample record of the latent cache: one LMDB value per sample.
 *
 * A record holds what encoderd computed for one training sample: the VAE
 * latent distribution (mean and log-variance, so the trainer draws a fresh
 * latent each epoch), optionally the same for the mirrored image, the text
 * encoders' hidden states and pooled embedding, the token ids, and an
 * optional conditioning input (its latent, or its pixels). It is pure
 * bytes: this module knows nothing of LMDB.
 *
 * Layout, version 1, every integer little-endian, written and read field by
 * field:
 *
 *   off size field
 *     0  4   magic "LDMR"
 *     4  2   format version (1)
 *     6  1   dtype of the float sections: 1 = IEEE binary16 (fp16)
 *     7  1   flip: 1 when the image was mirrored left-right, else 0
 *     8  4   flags: LDM_REC_* below
 *    12  4   CRC-32 (zlib's) of every byte after the header
 *    16  12  latent C, H, W (all 0: no latent, as in the empty caption's blob)
 *    28  8   text tokens L, text width D (SDXL: both encoders' widths summed)
 *    36  4   pooled width P (> 0 exactly when LDM_REC_POOLED)
 *    40  4   token id count N (SDXL: the first encoder's ids, then the second's)
 *    44  4   bucket
 *    48  8   original height, width
 *    56  8   crop top, left
 *    64  8   target height, width
 *    72  12  conditioning C, H, W (all 0 without a conditioning section)
 *    84  4   reserved, 0
 *    88      payload sections, each starting at a multiple of 8 bytes from
 *            the record's start, the gaps filled with zero bytes:
 *              latent mean            fp16 (C, H, W)
 *              latent log-variance    fp16 (C, H, W)
 *              flipped mean           fp16 (C, H, W)   LDM_REC_FLIPPED
 *              flipped log-variance   fp16 (C, H, W)   LDM_REC_FLIPPED
 *              text hidden states     fp16 (L, D)
 *              pooled embedding       fp16 (P)         LDM_REC_POOLED
 *              token ids              uint32 (N)
 *              conditioning latent    fp16 (C, H, W)   LDM_REC_COND_LATENT
 *           or conditioning pixels    uint8 (C, H, W)  LDM_REC_COND_PIXELS
 *
 * The record's length is exactly the header plus the padded sections (the
 * last one padded too). Parsing checks the structure (magic, version,
 * every bound, the exact length, zero padding) but not the CRC, which costs
 * a pass over the payload: ldm_record_check_crc() does that, for verifiers.
 *
 * Section pointers of a parsed record point into the value (no copy), so a
 * record read from LMDB's map is used in place while its read transaction
 * lives. LMDB places values at any alignment, so the pointers are bytes:
 * read elements with ldm_record_f16() / ldm_record_u32() or copy them out.
 * The project assumes a little-endian host, on which the payload sections
 * have the bytes of uint16_t (fp16) and uint32_t arrays.
 */
#ifndef LDM_RECORD_H
#define LDM_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "le.h"

#define LDM_RECORD_MAGIC "LDMR"
#define LDM_RECORD_VERSION 1
#define LDM_RECORD_HEADER 88 /* bytes before the first section */
#define LDM_RECORD_ALIGN 8   /* sections start at multiples of this */
#define LDM_RECORD_FP16 1    /* the one float dtype code */

enum ldm_record_flag {
    LDM_REC_POOLED = 1u << 0,      /* a pooled embedding section */
    LDM_REC_FLIPPED = 1u << 1,     /* mean/log-variance of the mirrored image too */
    LDM_REC_COND_LATENT = 1u << 2, /* a conditioning latent (fp16) */
    LDM_REC_COND_PIXELS = 1u << 3, /* conditioning pixels (uint8); not with COND_LATENT */
};
#define LDM_REC_KNOWN_FLAGS 0xfu

/* Bounds a record keeps (a parsed one, and one being encoded). */
#define LDM_REC_MAX_CHANNELS 64      /* latent C, conditioning latent C */
#define LDM_REC_MAX_PIXEL_CHANNELS 4 /* conditioning pixels C */
#define LDM_REC_MAX_LATENT_SIDE 2048 /* latent H, W (16384 px at factor 8) */
#define LDM_REC_MAX_TOKENS 1024      /* text L */
#define LDM_REC_MAX_WIDTH 16384      /* text D, pooled P */
#define LDM_REC_MAX_IDS 4096         /* token ids */
#define LDM_REC_MAX_SIDE 65536       /* sizes, crop offsets, bucket, conditioning pixel H, W */
#define LDM_REC_MAX_BYTES (1u << 30) /* a whole record */

/* The header fields a writer chooses (version, magic and CRC are the
 * codec's). */
struct ldm_record_hdr {
    unsigned flags;                        /* LDM_REC_* */
    uint32_t latent_c, latent_h, latent_w; /* (C, H, W) of each latent section; 0,0,0: none */
    uint32_t text_len, text_dim;           /* (L, D) of the hidden states; 0,0: none */
    uint32_t pooled_dim;                   /* (P); > 0 exactly when LDM_REC_POOLED */
    uint32_t n_ids;                        /* token ids */
    uint32_t bucket;                       /* aspect-ratio bucket id */
    uint32_t orig_h, orig_w;               /* decoded image size before resize and crop */
    uint32_t crop_top, crop_left;          /* crop corner in the resized image */
    uint32_t target_h, target_w;           /* size of the image that was encoded */
    uint32_t cond_c, cond_h, cond_w;       /* conditioning (C, H, W); 0,0,0 without */
    int flip;                              /* 0, or 1 when mirrored */
};

/* The payload, one pointer per section (NULL where absent). For encoding,
 * fp16 sections are uint16_t arrays and ids a uint32_t array in host
 * (little-endian) order; in a parsed record they point into the value. */
struct ldm_record_sections {
    const void *mean, *logvar;           /* fp16 (C, H, W) each */
    const void *flip_mean, *flip_logvar; /* fp16 (C, H, W), LDM_REC_FLIPPED */
    const void *text;                    /* fp16 (L, D) */
    const void *pooled;                  /* fp16 (P), LDM_REC_POOLED */
    const void *ids;                     /* uint32 (N) */
    const void *cond;                    /* fp16 or uint8 (C, H, W), LDM_REC_COND_* */
};

/* Bytes of each section (unpadded) and of the whole record. */
struct ldm_record_sizes {
    size_t latent; /* one latent section: C·H·W·2 */
    size_t text;   /* L·D·2 */
    size_t pooled; /* P·2 */
    size_t ids;    /* N·4 */
    size_t cond;   /* C·H·W·2 (latent) or C·H·W (pixels) */
    size_t total;  /* header + every present section padded to LDM_RECORD_ALIGN */
};

/* A parsed record: a view of the value it was parsed from. */
struct ldm_record {
    struct ldm_record_hdr hdr;
    uint32_t version;               /* as stored (LDM_RECORD_VERSION) */
    uint32_t crc;                   /* as stored; see ldm_record_check_crc */
    struct ldm_record_sections sec; /* pointers into the value */
    struct ldm_record_sizes size;
    const void *data; /* the whole value */
    size_t len;
};

/* Check *h against the bounds and rules above and compute its sizes into
 * *out. Returns 0 or LDM_EINVAL naming the field and its value. */
int ldm_record_size(const struct ldm_record_hdr *h, struct ldm_record_sizes *out);

/* Encode *h and the sections into buf (cap bytes, any alignment); *len
 * receives the record's length (ldm_record_size's total). Every section the
 * header calls for must be non-NULL. The caller owns buf. Returns 0,
 * LDM_EINVAL (a header ldm_record_size rejects, a missing section) or
 * LDM_ERANGE (cap too small; the detail gives both sizes). */
int ldm_record_encode(const struct ldm_record_hdr *h, const struct ldm_record_sections *s,
                      void *buf, size_t cap, size_t *len);

/* As ldm_record_encode, into a new buffer: *out (malloc'd, the caller frees
 * it) and *len. Returns 0, LDM_EINVAL or LDM_ENOMEM; *out is NULL on failure. */
int ldm_record_new(const struct ldm_record_hdr *h, const struct ldm_record_sections *s, void **out,
                   size_t *len);

/* Parse the `len` bytes at val as a record, filling *out with pointers into
 * them (val must stay unchanged while *out is used). `label` names the
 * record in error details (a sample key; NULL: "record"). Returns 0,
 * LDM_EFORMAT (wrong magic, version 0, a field out of bounds, flags that
 * contradict the sizes, nonzero padding, a length other than the header's
 * total; the detail names the record and the field) or LDM_EUNSUPPORTED (a
 * newer version or an unknown dtype). On failure *out is zeroed. */
int ldm_record_parse(const void *val, size_t len, const char *label, struct ldm_record *out);

/* Compute the CRC-32 of r's payload and compare it with the stored one.
 * Returns 0 or LDM_EFORMAT ("LABEL: payload CRC-32 ... stored ..."). */
int ldm_record_check_crc(const struct ldm_record *r, const char *label);

/* Element i of a section: an fp16 bit pattern, or a uint32 (token id). */
static inline uint16_t ldm_record_f16(const void *section, size_t i)
{
    return ldm_le16((const unsigned char *)section + 2 * i);
}

static inline uint32_t ldm_record_u32(const void *section, size_t i)
{
    return ldm_le32((const unsigned char *)section + 4 * i);
}

#endif
