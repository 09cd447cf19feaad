#!/usr/bin/python3
"""Everyday digit pictures for `vit predict`'s test (tests/fixtures/drawings/*.png): digits drawn
with a font, as a person's drawing app, scanner or camera would give them, none of them prepared
the way MNIST's digits were.

    /usr/bin/python3 tests/reference/make_drawings.py [--out tests/fixtures/drawings] [--count 200]

Each picture: one digit (0-9 in turn) in a DejaVu font (sans, sans bold, serif, mono), at a random
size (a quarter to nine tenths of the canvas height), position and stroke width (the font's
outline widened by 0 to a thirtieth of the font size: pens from the font's own to about twice
as heavy; heavier ones close the loops of 6, 8 and 9), on a canvas of
random size (48-256 pixels a side, not square); half dark ink on a light background, half light
on dark; a third of the dark-on-light ones on grey paper with grey ink; some with a
transparent background (RGBA, ink opaque; half the dark-on-light ones) as drawing apps export. The file name starts with the
digit. Seeded: the same files every run (Debian's python3-pil and fonts-dejavu-core).
"""
import argparse
import os
import random

from PIL import Image, ImageDraw, ImageFont

FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf"]
FONT_DIR = "/usr/share/fonts/truetype/dejavu"


def drawing(rng, digit):
    w, h = rng.randint(48, 256), rng.randint(48, 256)
    size = max(8, int(h * rng.uniform(0.25, 0.9)))
    font = ImageFont.truetype(os.path.join(FONT_DIR, rng.choice(FONTS)), size)
    stroke = rng.randint(0, size // 30)  # a pen up to about twice the font's own stroke
    text = str(digit)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    tw, th = right - left, bottom - top
    if tw >= w or th >= h:  # too large for this canvas: shrink the canvas's share
        return drawing(rng, digit)
    x = rng.randint(0, w - tw) - left
    y = rng.randint(0, h - th) - top
    dark_ink = rng.random() < 0.5
    alpha = dark_ink and rng.random() < 0.5  # as drawing apps export: dark ink, clear paper
    if dark_ink:
        paper, ink = (255, 0)
        if rng.random() < 1 / 3:
            paper, ink = rng.randint(150, 210), rng.randint(30, 90)
    else:
        paper, ink = (0, 255)
    if alpha:
        img = Image.new("RGBA", (w, h), (paper, paper, paper, 0))
        fill = (ink, ink, ink, 255)
    else:
        img = Image.new("L", (w, h), paper)
        fill = ink
    ImageDraw.Draw(img).text((x, y), text, font=font, fill=fill, stroke_width=stroke,
                             stroke_fill=fill)
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/fixtures/drawings")
    ap.add_argument("--count", type=int, default=200)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(20261203)
    for i in range(a.count):
        digit = i % 10
        drawing(rng, digit).save(os.path.join(a.out, f"{digit}_{i:03d}.png"), optimize=True)
    print(f"wrote {a.count} drawings to {a.out}")


if __name__ == "__main__":
    main()
