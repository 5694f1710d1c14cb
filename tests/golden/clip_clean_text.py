#!/usr/bin/python3
"""clip_clean_text.py IN.json OUT.json — the text OpenAI CLIP's tokenizer splits, for each input.

IN holds a JSON list of strings; OUT receives the list of cleaned strings:
html.unescape twice, str.strip(), runs of White_Space made one space (the
`regex` module's \\s, which Debian's python3 lacks, so written out here),
str.strip(), str.lower() — simple_tokenizer.py's basic_clean and
whitespace_clean without ftfy. Run with /usr/bin/python3.
"""
import html
import json
import sys

WHITE_SPACE = frozenset(chr(c) for c in [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
                        + list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def collapse(text):
    out, in_space = [], False
    for ch in text:
        if ch in WHITE_SPACE:
            if not in_space:
                out.append(" ")
            in_space = True
        else:
            out.append(ch)
            in_space = False
    return "".join(out)


def clean(text):
    text = html.unescape(html.unescape(text)).strip()
    return collapse(text).strip().lower()


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        inputs = json.load(f)
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump([clean(t) for t in inputs], f)


if __name__ == "__main__":
    main()
