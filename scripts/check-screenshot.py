#!/usr/bin/env python3
"""Checks that a screenshot (PNG, as headless Chromium writes it) is not blank: decodes it with the
standard library alone (zlib and the PNG filters) and requires at least MIN_COLOURS distinct colours
and at least MIN_INK of its pixels away from the page's most common colour (the background).

    scripts/check-screenshot.py shot.png [min_width min_height]
"""
import struct
import sys
import zlib

MIN_COLOURS = 64
MIN_INK = 0.02


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("%s: not a PNG file" % path)
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            channels = {2: 3, 6: 4, 0: 1, 4: 2}.get(colour)
            if depth != 8 or channels is None or interlace:
                raise SystemExit("%s: only 8-bit, non-interlaced grey/RGB(A) PNGs" % path)
        elif kind == b"IDAT":
            idat += body
    raw, bpp = zlib.decompress(idat), channels
    stride, rows, prev = width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def main():
    path = sys.argv[1]
    min_w = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    min_h = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    width, height, bpp, rows = decode(path)
    counts = {}
    for row in rows:
        for x in range(0, len(row), bpp):
            px = row[x:x + min(bpp, 3)]
            counts[px] = counts.get(px, 0) + 1
    total = width * height
    background = max(counts.values())
    ink = 1 - background / total
    ok = width >= min_w and height >= min_h and len(counts) >= MIN_COLOURS and ink >= MIN_INK
    print("%s: %dx%d, %d colours, %.1f%% of pixels off the background: %s"
          % (path, width, height, len(counts), 100 * ink, "not blank" if ok else "BLANK or too small"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
