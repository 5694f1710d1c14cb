/* utf8.h — strict UTF-8 validation (RFC 3629, Unicode table 3-7).
 *
 * Valid means: every sequence is the shortest encoding of a code point in
 * U+0000..U+10FFFF, none is a surrogate (U+D800..U+DFFF), and the text does
 * not end inside a sequence. Overlong forms (C0 80, E0 80 80, ...), the bytes
 * C0, C1 and F5..FF, stray continuation bytes and 5- or 6-byte forms are
 * invalid. NUL (U+0000) and noncharacters (U+FFFE, ...) are valid UTF-8;
 * callers that must refuse them check for them themselves.
 */
#ifndef LDM_UTF8_H
#define LDM_UTF8_H

#include <stddef.h>

/* 1 if the `len` bytes at `s` are valid UTF-8, else 0. `s` may be NULL when
 * `len` is 0. */
int ldm_utf8_valid(const char *s, size_t len);

/* The length of the longest valid prefix of the `len` bytes at `s` that ends
 * on a sequence boundary: `len` when all is valid, else the offset of the
 * first byte of the first invalid or truncated sequence. */
size_t ldm_utf8_prefix(const char *s, size_t len);

#endif
