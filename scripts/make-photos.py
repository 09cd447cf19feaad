"""Writes a folder dataset of synthetic photographs for the input pipeline's benchmarks
(docs/PERFORMANCE.md, "The input pipeline"): 500 x 375 JPEGs (Pillow, quality 90) of blurred
ellipses over colour gradients, with noise, about 40 KB each, in DIR/train/c0..c3 and DIR/val/c0..c3.
Seeded: the same files every time.

    /usr/bin/python3 scripts/make-photos.py DIR [--train N] [--val N]
"""

import argparse
import os
import random

from PIL import Image, ImageDraw, ImageFilter


def photo(rng, width=500, height=375):
    # A gradient between two random colours, a few blurred ellipses, then pixel noise.
    a = [rng.randrange(256) for _ in range(3)]
    b = [rng.randrange(256) for _ in range(3)]
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        t = y / (height - 1)
        row = tuple(int(a[c] * (1 - t) + b[c] * t) for c in range(3))
        for x in range(width):
            px[x, y] = row
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(2, 6)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(40, 250), rng.randrange(40, 200)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse([x0 - w // 2, y0 - h // 2, x0 + w // 2, y0 + h // 2], fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(3))
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(img, noise, 0.15)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--train", type=int, default=160, help="images in train/ (all classes)")
    ap.add_argument("--val", type=int, default=40, help="images in val/ (all classes)")
    a = ap.parse_args()
    rng = random.Random(0)
    n = 0
    for split, count in (("train", a.train), ("val", a.val)):
        for i in range(count):
            d = os.path.join(a.dir, split, f"c{i % 4}")
            os.makedirs(d, exist_ok=True)
            photo(rng).save(os.path.join(d, f"{n}.jpg"), quality=90)
            n += 1
    print(f"wrote {n} JPEGs under {a.dir}")


if __name__ == "__main__":
    main()
