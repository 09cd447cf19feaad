#!/usr/bin/env python3
"""Writes a synthetic colour dataset in CIFAR-10's binary format (data_batch_1..5.bin,
test_batch.bin, batches.meta.txt) for `vit train --data cifar10:OUT`: 32x32 RGB images of ten
classes, each a shape (disc, square, ring, cross, bar, triangle) in one of a few colours, at a
random position and size, over a random background, with pixel noise. The class is the shape and
colour pair. Seeded: the same files every time. Standard library only.

Usage: scripts/make-shapes-cifar.py OUT [--train N] [--test N] [--seed S]"""
import argparse
import os
import random

CLASSES = [("disc", (220, 40, 40)), ("disc", (40, 90, 220)), ("square", (230, 200, 30)),
           ("square", (40, 180, 60)), ("ring", (220, 40, 40)), ("ring", (240, 240, 240)),
           ("cross", (40, 90, 220)), ("bar", (230, 120, 20)), ("triangle", (150, 50, 200)),
           ("triangle", (40, 180, 60))]


def inside(shape, x, y, cx, cy, r):
    dx, dy = x - cx, y - cy
    if shape == "disc":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return abs(dx) <= r * 0.8 and abs(dy) <= r * 0.8
    if shape == "ring":
        d = dx * dx + dy * dy
        return (0.55 * r) ** 2 <= d <= r * r
    if shape == "cross":
        return (abs(dx) <= r * 0.3 and abs(dy) <= r) or (abs(dy) <= r * 0.3 and abs(dx) <= r)
    if shape == "bar":
        return abs(dy) <= r * 0.3 and abs(dx) <= r
    return dy <= r * 0.7 and dy >= -r and abs(dx) <= (dy + r) * 0.55  # triangle, point up


def image(rng, label):
    shape, colour = CLASSES[label]
    bg = [rng.randrange(0, 256) for _ in range(3)]
    cx, cy, r = rng.uniform(9, 23), rng.uniform(9, 23), rng.uniform(5, 9)
    planes = [bytearray(1024) for _ in range(3)]
    for y in range(32):
        for x in range(32):
            on = inside(shape, x + 0.5, y + 0.5, cx, cy, r)
            for c in range(3):
                v = (colour[c] if on else bg[c]) + rng.gauss(0, 20)
                planes[c][y * 32 + x] = max(0, min(255, int(round(v))))
    return bytes([label]) + b"".join(bytes(p) for p in planes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=10000, help="training images (5 batches)")
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    files = [f"data_batch_{b}.bin" for b in range(1, 6)]
    per = [a.train // 5 + (1 if b < a.train % 5 else 0) for b in range(5)]
    for name, n in list(zip(files, per)) + [("test_batch.bin", a.test)]:
        with open(os.path.join(a.out, name), "wb") as f:
            for i in range(n):
                f.write(image(rng, i % 10))
    with open(os.path.join(a.out, "batches.meta.txt"), "w") as f:
        for shape, colour in CLASSES:
            f.write(f"{shape}-{colour[0]}-{colour[1]}-{colour[2]}\n")
    print(f"make-shapes-cifar: {a.train} train / {a.test} test images in {a.out}")


if __name__ == "__main__":
    main()
