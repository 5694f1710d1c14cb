#!/usr/bin/python3
"""gen_unicode_tables.py — writes models/unicode_tables.c (see models/unicode_tables.h).

Run with Debian's interpreter, whose unicodedata, str.lower and html module
are the reference the tokenizers follow:

    /usr/bin/python3 tools/gen_unicode_tables.py > models/unicode_tables.c

Everything is derived from the running Python; the few facts written out here
(White_Space, the CLIP pattern's letters) are checked against it.
"""
import html
import html.entities
import sys
import unicodedata

MAXCP = 0x110000
CATS = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
        "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs",
        "Co", "Cn"]
# Unicode's White_Space property (PropList.txt, unchanged since Unicode 6.3);
# str.isspace() is this plus U+001C..U+001F, which is checked below.
WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + \
    list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
# the letters of <|startoftext|> <|endoftext|> 's 't 're 've 'm 'll 'd
CLIP_LITERAL_LETTERS = "startofextndvml"


def ranges(cps):
    """Sorted code points -> [(lo, hi)] runs."""
    out = []
    for c in sorted(cps):
        if out and out[-1][1] + 1 == c:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def emit_ranges(name, cps, comment):
    rs = ranges(cps)
    print("/* %s */" % comment)
    print("const struct ldm_uc_range %s[] = {" % name)
    line = " "
    for lo, hi in rs:
        item = " {0x%X, 0x%X}," % (lo, hi)
        if len(line) + len(item) > 96:
            print(line)
            line = " "
        line += item
    if line.strip():
        print(line)
    print("};")
    print("const size_t %s_count = %d;\n" % (name, len(rs)))


def emit_categories(cats):
    starts, values = [], []
    for c in range(MAXCP):
        if c == 0 or cats[c] != cats[c - 1]:
            starts.append(c)
            values.append(CATS.index(cats[c]))
    print("const uint32_t ldm_uc_cat_start[] = {")
    for i in range(0, len(starts), 10):
        print("    " + " ".join("0x%X," % s for s in starts[i:i + 10]))
    print("};")
    print("const uint8_t ldm_uc_cat_value[] = {")
    for i in range(0, len(values), 20):
        print("    " + " ".join("%d," % v for v in values[i:i + 20]))
    print("};")
    print("const size_t ldm_uc_cat_count = %d;\n" % len(starts))
    print("/* the same for U+0000..U+00FF, indexed directly */")
    print("const uint8_t ldm_uc_cat_latin1[256] = {")
    for i in range(0, 256, 16):
        print("    " + " ".join("%d," % CATS.index(cats[c]) for c in range(i, i + 16)))
    print("};\n")


def sigma_properties():
    """The sets CPython's final-sigma rule uses, read off str.lower() itself:
    a code point c is case-ignorable when 'AΣcA' keeps σ but 'AΣc' gives ς,
    and cased (not ignorable) when both keep σ."""
    ignorable, cased = [], []
    for c in range(MAXCP):
        ch = chr(c)
        inner = ("A\u03a3" + ch + "A").lower()[1]
        tail = ("A\u03a3" + ch).lower()[1]
        if inner == "\u03c3" and tail == "\u03c2":
            ignorable.append(c)
        elif inner == "\u03c3" and tail == "\u03c3":
            cased.append(c)
    return ignorable, cased


def case_classes():
    """Union of each code point with its one-code-point lower, upper, title
    and case-folded forms: the case variants a case-insensitive match sees."""
    parent = list(range(MAXCP))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in range(MAXCP):
        ch = chr(c)
        for f in (ch.lower(), ch.upper(), ch.casefold(), ch.title()):
            if len(f) == 1:
                a, b = find(c), find(ord(f))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups = {}
    for c in range(MAXCP):
        groups.setdefault(find(c), []).append(c)
    return [g for g in groups.values() if len(g) > 1]


def clip_case_tables(cats, groups):
    ws = set(WHITE_SPACE)

    def in_class(c):
        return c in ws or cats[c][0] in "LN"

    unmatched = []
    for g in groups:
        if any(in_class(c) for c in g):
            unmatched += [c for c in g if not in_class(c)]
    folds = []
    for g in groups:
        for letter in CLIP_LITERAL_LETTERS:
            if ord(letter) in g:
                folds += [(c, ord(letter)) for c in g if c >= 0x80]
    return unmatched, sorted(set(folds))


def lower_runs():
    maps = []
    for c in range(MAXCP):
        low = chr(c).lower()
        if low == chr(c):
            continue
        if len(low) != 1:
            assert c == 0x130, "unexpected multi-code-point lower-case of U+%04X" % c
            continue
        maps.append((c, ord(low) - c))
    mapped = dict(maps)
    runs = []  # [lo, hi, delta, stride]
    for c, d in maps:
        if runs:
            lo, hi, rd, st = runs[-1]
            step = c - hi
            if rd == d and ((lo == hi and step in (1, 2)) or (lo != hi and step == st)):
                if step == 1 or (hi + 1) not in mapped:
                    runs[-1][1] = c
                    runs[-1][3] = step
                    continue
        runs.append([c, c, d, 1])
    for a, b in zip(runs, runs[1:]):
        assert a[1] < b[0]
    return runs


def decompositions():
    entries, pool = [], []
    for c in range(MAXCP):
        if 0xAC00 <= c <= 0xD7A3:
            continue  # Hangul syllables: decomposed arithmetically
        d = unicodedata.normalize("NFD", chr(c))
        if d == chr(c):
            continue
        entries.append((c, len(pool), len(d)))
        pool += [ord(x) for x in d]
    assert len(pool) < 65536
    return entries, pool


def emit_html():
    ents = sorted(html.entities.html5.items())
    print("const struct ldm_html_entity ldm_html_entities[] = {")
    for name, value in ents:
        assert 1 <= len(value) <= 2 and len(value) <= len(name) + 1 and name.isascii()
        assert "\0" not in value
        cps = [ord(x) for x in value] + [0]
        print('    {"%s", {0x%X, 0x%X}},' % (name, cps[0], cps[1]))
    print("};")
    print("const size_t ldm_html_entity_count = %d;\n" % len(ents))
    fixes = sorted(html._invalid_charrefs.items())
    print("const struct ldm_html_fix ldm_html_fixes[] = {")
    for i in range(0, len(fixes), 6):
        print("   " + "".join(" {0x%X, 0x%X}," % (n, ord(v)) for n, v in fixes[i:i + 6]))
    print("};")
    print("const size_t ldm_html_fix_count = %d;\n" % len(fixes))
    emit_ranges("ldm_html_invalid", html._invalid_codepoints,
                "numeric references that html.unescape drops")


def main():
    cats = [unicodedata.category(chr(c)) for c in range(MAXCP)]
    py_space = [c for c in range(MAXCP) if chr(c).isspace()]
    assert sorted(set(WHITE_SPACE) | set(range(0x1C, 0x20))) == py_space
    ignorable, cased = sigma_properties()
    unmatched, folds = clip_case_tables(cats, case_classes())
    print("/* unicode_tables.c — GENERATED by tools/gen_unicode_tables.py from Python %s"
          % sys.version.split()[0])
    print(" * (Unicode %s); do not edit. See unicode_tables.h. */" % unicodedata.unidata_version)
    print('#include "unicode_tables.h"\n')
    print('const char ldm_uc_version[] = "%s";\n' % unicodedata.unidata_version)
    emit_categories(cats)
    emit_ranges("ldm_uc_white_space", WHITE_SPACE, "White_Space")
    emit_ranges("ldm_uc_py_space", py_space, "str.isspace()")
    emit_ranges("ldm_uc_case_ignorable", ignorable, "case-ignorable (final sigma)")
    emit_ranges("ldm_uc_cased", cased, "cased and not case-ignorable (final sigma)")
    emit_ranges("ldm_uc_clip_unmatched", unmatched,
                "refused by a case-insensitive [^\\s\\p{L}\\p{N}]")
    print("const struct ldm_uc_fold ldm_uc_ascii_fold[] = {")
    print("   " + "".join(" {0x%X, '%s'}," % (c, chr(a)) for c, a in folds))
    print("};")
    print("const size_t ldm_uc_ascii_fold_count = %d;\n" % len(folds))
    runs = lower_runs()
    print("const struct ldm_uc_case ldm_uc_lower_map[] = {")
    for i in range(0, len(runs), 3):
        print("   " + "".join(" {0x%X, 0x%X, %d, %d}," % tuple(r) for r in runs[i:i + 3]))
    print("};")
    print("const size_t ldm_uc_lower_map_count = %d;\n" % len(runs))
    entries, pool = decompositions()
    print("const struct ldm_uc_decomp ldm_uc_decomp[] = {")
    for i in range(0, len(entries), 4):
        print("   " + "".join(" {0x%X, %d, %d}," % e for e in entries[i:i + 4]))
    print("};")
    print("const size_t ldm_uc_decomp_count = %d;" % len(entries))
    print("const uint32_t ldm_uc_decomp_pool[] = {")
    for i in range(0, len(pool), 10):
        print("    " + " ".join("0x%X," % p for p in pool[i:i + 10]))
    print("};\n")
    ccc = []
    for c in range(MAXCP):
        v = unicodedata.combining(chr(c))
        if v:
            if ccc and ccc[-1][1] + 1 == c and ccc[-1][2] == v:
                ccc[-1][1] = c
            else:
                ccc.append([c, c, v])
    print("const struct ldm_uc_ccc ldm_uc_ccc_map[] = {")
    for i in range(0, len(ccc), 4):
        print("   " + "".join(" {0x%X, 0x%X, %d}," % tuple(r) for r in ccc[i:i + 4]))
    print("};")
    print("const size_t ldm_uc_ccc_count = %d;\n" % len(ccc))
    emit_html()


if __name__ == "__main__":
    main()
