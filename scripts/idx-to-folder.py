#!/usr/bin/env python3
"""Writes an IDX dataset (Fashion-MNIST, MNIST) as an image-folder dataset of PNG files:
OUT/train/<class>/<n>.png and OUT/val/<class>/<n>.png (the IDX test split), for
`vit train --data folder:OUT`. Standard library only (PNG written with zlib).

Usage: scripts/idx-to-folder.py [IDX_DIR] OUT [--names fashion|digits]
IDX_DIR defaults to /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)."""
import argparse
import gzip
import os
import struct
import sys
import zlib

FASHION = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def read_idx(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with (gzip.open if p.endswith(".gz") else open)(p, "rb") as f:
                data = f.read()
            break
    else:
        sys.exit(f"idx-to-folder: {path}(.gz) not found")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def png(width, height, gray):
    """An 8-bit grayscale PNG of the given rows-major pixels."""
    raw = b"".join(b"\0" + gray[y * width:(y + 1) * width] for y in range(height))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0,
                                                              0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("idx_dir", nargs="?", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("out")
    ap.add_argument("--names", choices=["fashion", "digits"], default="fashion")
    a = ap.parse_args()
    names = FASHION if a.names == "fashion" else [str(d) for d in range(10)]
    for split, prefix in (("train", "train"), ("val", "t10k")):
        (n, h, w), px = read_idx(os.path.join(a.idx_dir, prefix + "-images-idx3-ubyte"))
        _, labels = read_idx(os.path.join(a.idx_dir, prefix + "-labels-idx1-ubyte"))
        for name in names:
            os.makedirs(os.path.join(a.out, split, name), exist_ok=True)
        for i in range(n):
            path = os.path.join(a.out, split, names[labels[i]], f"{i:05d}.png")
            with open(path, "wb") as f:
                f.write(png(w, h, px[i * h * w:(i + 1) * h * w]))
        print(f"idx-to-folder: {n} {split} images in {os.path.join(a.out, split)}")


if __name__ == "__main__":
    main()
