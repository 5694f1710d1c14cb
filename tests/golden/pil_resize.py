#!/usr/bin/python3
"""Golden images from Pillow and torchvision for the image, resample and transform tests.

    pil_resize.py resample  OUTDIR   PIL Image.resize of test images, every filter
    pil_resize.py image     OUTDIR   encoded JPEG/PNG/WebP files and PIL's RGB decodes
    pil_resize.py transform OUTDIR   torchvision Resize + CenterCrop/crop + hflip results
    pil_resize.py decode    OUTDIR   decode the files listed in OUTDIR/decode.txt with PIL

Everything is deterministic (fixed seeds). Images are written as binary PPM (RGB)
or PGM (grey); each mode writes OUTDIR/cases.txt, one case a line, fields
separated by spaces (the C tests read it). Run with Debian's /usr/bin/python3,
which has python3-pil 9.4, python3-torchvision and python3-numpy.
"""
import io
import os
import struct
import sys
import warnings
import zlib

try:
    import numpy as np
    import PIL
    from PIL import Image
except ImportError as e:  # the C test prints this and fails
    sys.stderr.write("pil_resize.py: %s (needs Debian's python3-pil and python3-numpy)\n" % e)
    sys.exit(3)

FILTERS = {
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
}


# ---- test images -----------------------------------------------------------------

def noise(w, h, seed, ch=3):
    rs = np.random.RandomState(seed)
    shape = (h, w, ch) if ch > 1 else (h, w)
    return rs.randint(0, 256, size=shape).astype(np.uint8)


def photo(w, h, seed):
    """Smooth colour fields, discs with hard edges and mild noise."""
    rs = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 37.0 + y / 53.0)
    g = 128 + 90 * np.cos(x / 23.0 - y / 41.0)
    b = 40 + 180 * x / max(w - 1, 1) * (0.5 + 0.5 * y / max(h - 1, 1))
    img = np.stack([r, g, b], axis=-1)
    for _ in range(8):
        cx, cy = rs.uniform(0, w), rs.uniform(0, h)
        rad = rs.uniform(0.05, 0.25) * min(w, h)
        col = rs.uniform(0, 255, size=3)
        img[(x - cx) ** 2 + (y - cy) ** 2 < rad * rad] = col
    img += rs.normal(0, 4, size=img.shape)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def edges(w, h):
    """Checkerboard with one-pixel lines: the worst case for ringing and rounding."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[((x // 4 + y // 4) % 2) == 0] = (255, 255, 255)
    img[:, ::7] = (255, 0, 0)
    img[::5, :] = (0, 0, 255)
    img[h // 2, :] = (0, 255, 0)
    return img


def gradient(w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 255 - (r + g) / 2
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def save_pnm(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim == 2:
        head = b"P5\n%d %d\n255\n" % (arr.shape[1], arr.shape[0])
    else:
        head = b"P6\n%d %d\n255\n" % (arr.shape[1], arr.shape[0])
    with open(path, "wb") as f:
        f.write(head + arr.tobytes())


def pil(arr):
    return Image.fromarray(arr, "L" if arr.ndim == 2 else "RGB")


# ---- resample ---------------------------------------------------------------------

RESAMPLE_SOURCES = [
    ("noise333x500", lambda: noise(333, 500, 1),
     [(200, 301), (97, 123), (500, 211), (333, 250), (150, 500), (333, 500), (3, 2), (1, 1),
      (640, 480)]),
    ("photo257x190", lambda: photo(257, 190, 2), [(256, 189), (128, 95), (300, 222), (91, 67)]),
    ("grad160x90", lambda: gradient(160, 90), [(71, 40), (320, 181)]),
    ("edges64x48", lambda: edges(64, 48), [(100, 75), (31, 23), (64, 17), (17, 48)]),
    ("col1x37", lambda: noise(1, 37, 3), [(5, 100), (1, 10), (3, 37)]),
    ("row41x1", lambda: noise(41, 1, 4), [(100, 1), (7, 3)]),
    ("noise7x13", lambda: noise(7, 13, 5), [(50, 31), (701, 13), (3, 5), (7, 13)]),
    ("grey100x75", lambda: noise(100, 75, 6, ch=1), [(33, 25), (150, 110)]),
    ("photo1024x768", lambda: photo(1024, 768, 7), [(683, 512), (512, 384)]),
]


def mode_resample(out):
    lines = []
    for name, make, sizes in RESAMPLE_SOURCES:
        src = make()
        save_pnm(os.path.join(out, name + ".pnm"), src)
        im = pil(src)
        for fname, flt in FILTERS.items():
            for (w, h) in sizes:
                res = np.asarray(im.resize((w, h), flt))
                exp = "%s_%s_%dx%d.pnm" % (name, fname, w, h)
                save_pnm(os.path.join(out, exp), res)
                lines.append("%s.pnm %s %d %d %s" % (name, fname, w, h, exp))
    return lines


# ---- PNG files written byte by byte (bit depths and layouts PIL cannot write) ------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def pack_row(samples, depth):
    samples = np.asarray(samples, dtype=np.int64).ravel()
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // depth
    pad = (-len(samples)) % per
    s = np.concatenate([samples, np.zeros(pad, np.int64)]).reshape(-1, per)
    shifts = np.array([8 - depth * (j + 1) for j in range(per)])
    return (s << shifts).sum(axis=1).astype(np.uint8).tobytes()


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_bytes(samples, depth, ctype, plte=None, trns=None, interlace=False):
    """samples: (h, w, channels) integers of the colour type's channels."""
    h, w = samples.shape[:2]
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for (x0, y0, dx, dy) in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw += b"\0" + pack_row(row, depth)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if plte is not None:
        out += chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).ravel()))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    return out + chunk(b"IEND", b"")


def crafted_pngs():
    rs = np.random.RandomState(11)

    def rnd(h, w, c, hi):
        return rs.randint(0, hi, size=(h, w, c))

    g16 = rnd(21, 33, 1, 65536)
    g16[::3, ::2] = rs.randint(0, 300, size=g16[::3, ::2].shape)  # some under 255: PIL keeps them
    pal3 = rs.randint(0, 256, size=(3, 3))
    pal16 = rs.randint(0, 256, size=(16, 3))
    pal100 = rs.randint(0, 256, size=(100, 3))
    return [
        ("grey1", png_bytes(rnd(23, 37, 1, 2), 1, 0)),
        ("grey2", png_bytes(rnd(17, 31, 1, 4), 2, 0)),
        ("grey4i", png_bytes(rnd(19, 29, 1, 16), 4, 0, interlace=True)),
        ("grey8trns", png_bytes(rnd(30, 40, 1, 256), 8, 0, trns=struct.pack(">H", 7))),
        ("grey16", png_bytes(g16, 16, 0)),
        ("ga8", png_bytes(rnd(20, 25, 2, 256), 8, 4)),
        ("ga16", png_bytes(rnd(20, 25, 2, 65536), 16, 4)),
        ("rgb8i", png_bytes(rnd(39, 45, 3, 256), 8, 2, interlace=True)),
        ("rgb16", png_bytes(rnd(20, 30, 3, 65536), 16, 2)),
        ("rgba8", png_bytes(rnd(30, 35, 4, 256), 8, 6)),
        ("rgba16i", png_bytes(rnd(27, 23, 4, 65536), 16, 6, interlace=True)),
        ("pal1", png_bytes(rnd(11, 19, 1, 2), 1, 3, plte=pal3[:2])),
        ("pal2short", png_bytes(rnd(13, 21, 1, 4), 2, 3, plte=pal3)),  # index 3 has no entry
        ("pal4i", png_bytes(rnd(15, 27, 1, 16), 4, 3, plte=pal16, trns=bytes(range(0, 160, 10)),
                            interlace=True)),
        ("pal8short", png_bytes(rnd(40, 50, 1, 256), 8, 3, plte=pal100)),
        ("tiny1x1", png_bytes(rnd(1, 1, 3, 256), 8, 2)),
    ]


# ---- image: encoded files and PIL's decodes ----------------------------------------

def encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def image_files():
    ph = photo(333, 500, 21)
    sm = photo(101, 77, 22)
    rgba = np.concatenate([photo(64, 48, 23), noise(64, 48, 24, ch=1)[..., None]], axis=-1)
    cmyk = Image.fromarray(np.concatenate([photo(90, 70, 25), noise(90, 70, 26, ch=1)[..., None]],
                                          axis=-1), "CMYK")
    f = [
        ("jpg420", encode(pil(ph), "JPEG", quality=90)),
        ("jpg444", encode(pil(ph), "JPEG", quality=95, subsampling=0)),
        ("jpg422", encode(pil(sm), "JPEG", quality=80, subsampling=1)),
        ("jpgprog", encode(pil(ph), "JPEG", quality=85, progressive=True)),
        ("jpgrestart", encode(pil(sm), "JPEG", quality=75, restart_marker_blocks=3)),
        ("jpggrey", encode(pil(photo(120, 80, 27)[..., 1].copy()), "JPEG", quality=90)),
        ("jpgcmyk", encode(cmyk, "JPEG", quality=92)),
        ("jpg1x1", encode(pil(noise(1, 1, 28)), "JPEG", quality=90)),
        ("jpg17x9", encode(pil(noise(17, 9, 29)), "JPEG", quality=90)),
        ("pngrgb", encode(pil(sm), "PNG")),
        ("pngrgba", encode(Image.fromarray(rgba, "RGBA"), "PNG")),
        ("pngl", encode(pil(noise(33, 21, 30, ch=1)), "PNG")),
        ("pngla", encode(Image.fromarray(rgba[..., [0, 3]].copy(), "LA"), "PNG")),
        ("pngp", encode(pil(sm).convert("P", palette=Image.ADAPTIVE, colors=37), "PNG",
                        transparency=5)),
        ("webplossy", encode(pil(sm), "WEBP", quality=80)),
        ("webplossless", encode(pil(sm), "WEBP", lossless=True)),
        ("webpalpha", encode(Image.fromarray(rgba, "RGBA"), "WEBP", quality=70)),
        ("webpalphall", encode(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True)),
    ]
    f += crafted_pngs()
    jpg = dict(f)["jpg420"]
    corrupt = bytearray(jpg)
    for i in range(len(jpg) // 2, len(jpg) // 2 + 40, 7):
        corrupt[i] = 0x5A
    warnfatal = warning_then_error(encode(pil(sm), "JPEG", quality=80, progressive=True))
    png = dict(f)["pngrgb"]
    badcrc = bytearray(png)
    badcrc[29] ^= 0xFF  # IHDR's CRC
    f += [
        ("jpgcorrupt", bytes(corrupt)),  # libjpeg warns and goes on; so does PIL
        ("jpgwarnfatal", warnfatal),  # a libjpeg warning, then a fatal error
        ("jpgtrunc", jpg[: len(jpg) * 6 // 10]),
        ("jpghead", jpg[:300]),
        ("pngtrunc", png[: len(png) // 2]),
        ("pngbadcrc", bytes(badcrc)),
        ("webptrunc", dict(f)["webplossy"][:400]),
        ("garbage", bytes(np.random.RandomState(31).randint(0, 256, 500).astype(np.uint8))),
    ]
    return f


def jpeg_markers(data, code):
    """Offsets of the markers 0xFF `code` of a JPEG (outside entropy-coded data)."""
    out, i = [], 2
    while i < len(data) - 1:
        if data[i] == 0xFF and data[i + 1] == code:
            out.append(i)
        i += 1
    return out


def warning_then_error(prog):
    """A progressive JPEG with stray bytes before its second scan (libjpeg
    warns and goes on) and a bad Huffman table after it (a fatal error)."""
    sos = jpeg_markers(prog, 0xDA)
    dht = [p for p in jpeg_markers(prog, 0xC4) if p > sos[1]][0]
    bad = bytearray(prog)
    bad[dht + 4] = 0x37  # table class 3
    return bytes(bad[: sos[1]] + b"\x12\x34\x56" + bad[sos[1]:])


def pil_decode(data):
    """PIL's RGB decode, or None where PIL refuses the bytes."""
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
        return np.asarray(im.convert("RGB"))
    except Exception:  # noqa: BLE001 - any refusal counts as "fails"
        return None


EXT = {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"RI": ".webp"}


def mode_image(out):
    lines = []
    for name, data in image_files():
        fn = name + EXT.get(data[:2], ".bin")
        with open(os.path.join(out, fn), "wb") as fh:
            fh.write(data)
        dec = pil_decode(data)
        if dec is None:
            lines.append("%s fail -" % fn)
        else:
            save_pnm(os.path.join(out, name + ".pnm"), dec)
            lines.append("%s ok %s.pnm" % (fn, name))
    # DCT-scaled decoding versus PIL's full decode and bilinear resize
    big = photo(1024, 768, 32)
    data = encode(pil(big), "JPEG", quality=90)
    with open(os.path.join(out, "big.jpg"), "wb") as fh:
        fh.write(data)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    for (w, h) in [(256, 192), (300, 225), (100, 75), (480, 360)]:
        exp = "big_%dx%d.pnm" % (w, h)
        save_pnm(os.path.join(out, exp), np.asarray(full.resize((w, h), Image.BILINEAR)))
        lines.append("big.jpg scaled %s %d %d" % (exp, w, h))
    return lines


def mode_decode(out):
    """Decode the files the C test wrote (listed one a line in decode.txt: IN OUT)."""
    lines = []
    with open(os.path.join(out, "decode.txt")) as fh:
        for line in fh:
            src, dst = line.split()
            with open(os.path.join(out, src), "rb") as f:
                dec = pil_decode(f.read())
            if dec is None:
                lines.append("%s fail -" % src)
            else:
                save_pnm(os.path.join(out, dst), dec)
                lines.append("%s ok %s" % (src, dst))
    return lines


# ---- transform: what diffusers' training scripts do --------------------------------

def mode_transform(out):
    try:
        import torchvision.transforms as T
        import torchvision.transforms.functional as F
    except ImportError as e:
        sys.stderr.write("pil_resize.py: %s (needs Debian's python3-torchvision)\n" % e)
        sys.exit(3)
    IM = T.InterpolationMode
    modes = {"bilinear": IM.BILINEAR, "bicubic": IM.BICUBIC, "lanczos": IM.LANCZOS}
    sources = {
        "photo1024x768": photo(1024, 768, 41),
        "photo1034x1024": photo(1034, 1024, 42),
        "photo517x512": photo(517, 512, 43),
        "photo333x500": photo(333, 500, 44),
        "photo100x60": photo(100, 60, 45),
        "noise640x427": noise(640, 427, 46),
    }
    for name, arr in sources.items():
        save_pnm(os.path.join(out, name + ".pnm"), arr)
    with open(os.path.join(out, "photo1024x768.jpg"), "wb") as fh:
        fh.write(encode(pil(sources["photo1024x768"]), "JPEG", quality=90))
    # name, source, resolution, filter, crop ("center" or "TOP,LEFT"), flip, order
    cases = [
        ("sd_center", "photo1024x768", 512, "bilinear", "center", 0, "after"),
        ("sd_center_flip", "photo1024x768", 512, "bilinear", "center", 1, "after"),
        ("sdxl_center_flip", "photo1024x768", 512, "bilinear", "center", 1, "before"),
        ("odd_after", "photo1034x1024", 512, "bilinear", "center", 1, "after"),
        ("odd_before", "photo1034x1024", 512, "bilinear", "center", 1, "before"),
        ("noresize", "photo517x512", 512, "bilinear", "center", 0, "after"),
        ("tall_bicubic", "photo333x500", 256, "bicubic", "center", 0, "after"),
        ("tall_lanczos", "photo333x500", 256, "lanczos", "center", 1, "before"),
        ("tall_random", "photo333x500", 256, "bilinear", "77,0", 0, "after"),
        ("tall_random_flip", "photo333x500", 256, "bilinear", "128,0", 1, "before"),
        ("upscale", "photo100x60", 128, "bilinear", "center", 0, "after"),
        ("wide_random", "noise640x427", 384, "bicubic", "0,191", 1, "after"),
        ("jpeg_e2e", "photo1024x768.jpg", 512, "bilinear", "center", 1, "after"),
    ]
    lines = []
    for (cname, src, res, flt, crop, flip, order) in cases:
        if src.endswith(".jpg"):
            img = Image.open(os.path.join(out, src)).convert("RGB")
        else:
            img = pil(sources[src])
        orig = (img.height, img.width)
        img = T.Resize(res, interpolation=modes[flt])(img)
        rh, rw = img.height, img.width
        if flip and order == "before":
            img = F.hflip(img)
        if crop == "center":  # as train_text_to_image_sdxl.py computes the crop corner
            top = max(0, int(round((img.height - res) / 2.0)))
            left = max(0, int(round((img.width - res) / 2.0)))
            img = T.CenterCrop(res)(img)
        else:
            top, left = (int(v) for v in crop.split(","))
            img = F.crop(img, top, left, res, res)
        if flip and order == "after":
            img = F.hflip(img)
        exp = cname + ".pnm"
        save_pnm(os.path.join(out, exp), np.asarray(img))
        lines.append("%s %s %d %s %s %d %s %d %d %d %d %d %d %s" % (
            cname, src if src.endswith(".jpg") else src + ".pnm", res, flt, crop, flip, order,
            orig[1], orig[0], rw, rh, top, left, exp))
    return lines


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("resample", "image", "transform", "decode"):
        sys.stderr.write(__doc__)
        return 2
    if not PIL.__version__.startswith("9.4"):
        sys.stderr.write("pil_resize.py: warning: Pillow %s, the goldens expect 9.4\n"
                         % PIL.__version__)
    warnings.simplefilter("ignore")
    mode, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    lines = {"resample": mode_resample, "image": mode_image, "transform": mode_transform,
             "decode": mode_decode}[mode](out)
    with open(os.path.join(out, "cases.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
