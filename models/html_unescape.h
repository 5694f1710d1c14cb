/* html_unescape.h — Python's html.unescape() over code points (CLIP's first cleanup step).
 *
 * Same matches and replacements as CPython 3.11's html.unescape:
 *   &#DIGITS;  &#xHEX;  (the ';' optional): the code point, except that
 *       0, 13 and 128..159 give Windows-1252's character (html._invalid_charrefs),
 *       surrogates and values above U+10FFFF give U+FFFD, and the code points
 *       of html._invalid_codepoints give nothing;
 *   &NAME;  &NAME  (NAME up to 32 characters of anything but tab, newline,
 *       form feed, space, '<', '&', '#', ';'): the HTML5 named reference
 *       (all 2231 of html.entities.html5); when NAME is not one, its longest
 *       prefix (at least 2 characters) that is a legacy name without ';'
 *       (&amp &lt &gt &quot &nbsp &copy &eacute ... 106 of them) is replaced
 *       and the rest kept; otherwise the text stays as it is.
 * Replaced text is not scanned again: "&amp;lt;" becomes "&lt;" (CLIP calls
 * unescape twice to undo such double escaping).
 */
#ifndef LDM_HTML_UNESCAPE_H
#define LDM_HTML_UNESCAPE_H

#include <stddef.h>
#include <stdint.h>

/* Unescape the `n` code points at `s` in place. The result is never longer
 * than the input; returns its length. Pure and thread-safe. */
size_t ldm_html_unescape(uint32_t *s, size_t n);

#endif
