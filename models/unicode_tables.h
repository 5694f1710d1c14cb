/* unicode_tables.h — the generated Unicode and HTML tables behind unicode.c and html_unescape.c.
 *
 * models/unicode_tables.c is written by tools/gen_unicode_tables.py from
 * Debian's /usr/bin/python3 (unicodedata, str.lower, html.entities); the
 * Unicode version is ldm_uc_version. Regenerate it, never edit it:
 *
 *   /usr/bin/python3 tools/gen_unicode_tables.py > models/unicode_tables.c
 *
 * Every range table is sorted by `lo`, ranges do not overlap, and both ends
 * are inclusive. Code outside models/ reads these through unicode.h.
 */
#ifndef LDM_UNICODE_TABLES_H
#define LDM_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

struct ldm_uc_range {
    uint32_t lo, hi;
};

/* Simple lower-case mappings: cp in [lo, hi] with (cp - lo) % stride == 0
 * maps to cp + delta (stride 1 for blocks, 2 for alternating pairs). */
struct ldm_uc_case {
    uint32_t lo, hi;
    int32_t delta;
    uint32_t stride;
};

/* Full canonical decomposition (NFD of one code point, Hangul syllables
 * excepted: those are decomposed arithmetically): `len` code points at
 * ldm_uc_decomp_pool[off]. */
struct ldm_uc_decomp {
    uint32_t cp;
    uint16_t off;
    uint16_t len;
};

/* Canonical combining class `ccc` (non-zero) for code points in [lo, hi]. */
struct ldm_uc_ccc {
    uint32_t lo, hi;
    uint32_t ccc;
};

/* A non-ASCII code point that the CLIP split pattern's case-insensitive
 * literals treat as the ASCII letter `ascii` (U+017F LATIN SMALL LETTER LONG S
 * matches 's'). */
struct ldm_uc_fold {
    uint32_t cp;
    uint32_t ascii;
};

/* One HTML5 named character reference as Python's html.entities.html5 has
 * it: the name (with its ';' where the entry has one) and one or two code
 * points (cp[1] is 0 when there is one). Sorted by strcmp of name. */
struct ldm_html_entity {
    const char *name;
    uint32_t cp[2];
};

/* A numeric character reference that html.unescape replaces by a fixed code
 * point (Python's html._invalid_charrefs: &#0; &#13; &#128;..&#159;). */
struct ldm_html_fix {
    uint32_t num;
    uint32_t cp;
};

extern const char ldm_uc_version[];

/* General category: ldm_uc_cat_start[i] .. ldm_uc_cat_start[i+1]-1 (the last
 * up to U+10FFFF) have category ldm_uc_cat_value[i], an enum ldm_uc_cat. */
extern const uint32_t ldm_uc_cat_start[];
extern const uint8_t ldm_uc_cat_value[];
extern const size_t ldm_uc_cat_count;
extern const uint8_t ldm_uc_cat_latin1[256]; /* the same, U+0000..U+00FF */

/* Unicode White_Space (the `\s` of the `regex` module). */
extern const struct ldm_uc_range ldm_uc_white_space[];
extern const size_t ldm_uc_white_space_count;
/* Python's str.isspace (White_Space plus U+001C..U+001F). */
extern const struct ldm_uc_range ldm_uc_py_space[];
extern const size_t ldm_uc_py_space_count;
/* The two properties of str.lower()'s final-sigma rule, as CPython applies
 * it: case-ignorable, and cased but not case-ignorable. */
extern const struct ldm_uc_range ldm_uc_case_ignorable[];
extern const size_t ldm_uc_case_ignorable_count;
extern const struct ldm_uc_range ldm_uc_cased[];
extern const size_t ldm_uc_cased_count;
/* Code points outside White_Space, L and N that a case-insensitive
 * [^\s\p{L}\p{N}] still refuses, because a case variant of them is a letter
 * (U+0345 COMBINING GREEK YPOGEGRAMMENI, a variant of iota). */
extern const struct ldm_uc_range ldm_uc_clip_unmatched[];
extern const size_t ldm_uc_clip_unmatched_count;
extern const struct ldm_uc_fold ldm_uc_ascii_fold[];
extern const size_t ldm_uc_ascii_fold_count;

/* str.lower() for every code point with a one-code-point result; U+0130
 * (lower-cased to "i\u0307") and U+03A3 (final sigma) are handled in code. */
extern const struct ldm_uc_case ldm_uc_lower_map[];
extern const size_t ldm_uc_lower_map_count;

extern const struct ldm_uc_decomp ldm_uc_decomp[];
extern const size_t ldm_uc_decomp_count;
extern const uint32_t ldm_uc_decomp_pool[];
extern const struct ldm_uc_ccc ldm_uc_ccc_map[];
extern const size_t ldm_uc_ccc_count;

extern const struct ldm_html_entity ldm_html_entities[];
extern const size_t ldm_html_entity_count;
extern const struct ldm_html_fix ldm_html_fixes[];
extern const size_t ldm_html_fix_count;
/* Code points that a numeric reference turns into nothing (Python's
 * html._invalid_codepoints). */
extern const struct ldm_uc_range ldm_html_invalid[];
extern const size_t ldm_html_invalid_count;

#endif
