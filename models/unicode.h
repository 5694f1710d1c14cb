/* unicode.h — code-point properties and text steps shared by the tokenizers.
 *
 * The properties come from generated tables (unicode_tables.c, written by
 * tools/gen_unicode_tables.py from Debian's Python 3, Unicode 14.0), so they
 * cover every code point, not a subset: general categories, White_Space,
 * Python's str.isspace, str.lower (all of Unicode, with U+0130 and the Greek
 * final sigma as CPython does them), canonical decomposition and combining
 * classes. Every function here is pure and thread-safe.
 *
 * Text is handled as arrays of code points (uint32_t); these functions take
 * and return counts, and never read outside the arrays given.
 */
#ifndef LDM_UNICODE_H
#define LDM_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* General categories, in the order the generated table numbers them. */
enum ldm_uc_cat {
    LDM_UC_LU, LDM_UC_LL, LDM_UC_LT, LDM_UC_LM, LDM_UC_LO,
    LDM_UC_MN, LDM_UC_MC, LDM_UC_ME,
    LDM_UC_ND, LDM_UC_NL, LDM_UC_NO,
    LDM_UC_PC, LDM_UC_PD, LDM_UC_PS, LDM_UC_PE, LDM_UC_PI, LDM_UC_PF, LDM_UC_PO,
    LDM_UC_SM, LDM_UC_SC, LDM_UC_SK, LDM_UC_SO,
    LDM_UC_ZS, LDM_UC_ZL, LDM_UC_ZP,
    LDM_UC_CC, LDM_UC_CF, LDM_UC_CS, LDM_UC_CO, LDM_UC_CN
};

#define LDM_UC_MAX 0x10FFFFu

/* The general category of `cp` (LDM_UC_CN above U+10FFFF). */
int ldm_uc_category(uint32_t cp);

/* 1 when `cp` is a letter (L*), a number (N*), punctuation (P*), other (C*:
 * controls, format, surrogates, private use, unassigned), a non-spacing mark
 * (Mn), else 0. */
int ldm_uc_is_letter(uint32_t cp);
int ldm_uc_is_number(uint32_t cp);
int ldm_uc_is_punct(uint32_t cp);
int ldm_uc_is_other(uint32_t cp);
int ldm_uc_is_mark_nonspacing(uint32_t cp);

/* 1 when `cp` has Unicode's White_Space property (the `\s` of Python's
 * `regex` module); ldm_uc_is_py_space: Python's str.isspace(), which adds
 * U+001C..U+001F. */
int ldm_uc_is_white_space(uint32_t cp);
int ldm_uc_is_py_space(uint32_t cp);

/* The one-code-point lower case of `cp` (itself when it has none). U+0130
 * gives 'i' here; ldm_uc_lower gives Python's "i\u0307". */
uint32_t ldm_uc_lower_cp(uint32_t cp);

/* Python's str.lower() of the `n` code points at `in`, written to `out`,
 * which must have room for n + ldm_uc_lower_extra(in, n) code points (they
 * may not overlap). Applies U+0130 -> U+0069 U+0307 and CPython's
 * final-sigma rule (U+03A3 -> U+03C2 at the end of a word). Returns the count
 * written. */
size_t ldm_uc_lower_extra(const uint32_t *in, size_t n);
size_t ldm_uc_lower(const uint32_t *in, size_t n, uint32_t *out);

/* The canonical decomposition (NFD) of `n` code points, with canonical
 * ordering, then with every non-spacing mark (Mn) removed: Python's
 * `"".join(c for c in unicodedata.normalize("NFD", s) if category(c) != "Mn")`,
 * the accent stripping of BERT's BasicTokenizer. `out` needs room for
 * 4 * n code points (no decomposition is longer than 4); in and out may not
 * overlap. Returns the count written. */
size_t ldm_uc_strip_accents(const uint32_t *in, size_t n, uint32_t *out);

/* The canonical combining class of `cp` (0 for most). */
unsigned ldm_uc_ccc(uint32_t cp);

/* Decode `len` bytes of UTF-8 (strict: see common/utf8.h) into `out`, which
 * needs room for `len` code points. Returns the number of code points, or
 * (size_t)-1 when the bytes are not valid UTF-8 (then *bad is the offset of
 * the first bad byte, when bad is not NULL). */
size_t ldm_uc_decode(const char *s, size_t len, uint32_t *out, size_t *bad);

/* Write the UTF-8 form of `cp` (<= U+10FFFF, not a surrogate) to `out`
 * (room for 4 bytes); returns 1..4. */
size_t ldm_uc_encode(uint32_t cp, unsigned char *out);

/* 1 when `cp` is in one of the sorted, disjoint inclusive ranges given as
 * `count` pairs {lo, hi} (the generated tables' struct ldm_uc_range). */
struct ldm_uc_range;
int ldm_uc_in_ranges(const struct ldm_uc_range *r, size_t count, uint32_t cp);

#endif
