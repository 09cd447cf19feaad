"""Pillow's time to do what a vitcpp folder dataset does once per image: decode a file and resize
its shorter side to floor(S / crop_pct) (timm's eval resize: 256 for 224 at crop_pct 0.875),
bicubic. The peer for `vit bench --data folder:DIR`'s `open` line (docs/PERFORMANCE.md).

    /usr/bin/python3 bench/decode_peer.py DIR [--size 224] [--crop-pct 0.875] [--draft]

--draft lets Pillow decode JPEGs at a reduced DCT scale first (Image.draft: 1/2, 1/4 or 1/8, the
largest that keeps both sides at least the target), as vitcpp does with libjpeg-turbo's M/8.
One process, one thread: the figure is images per second per core.
"""

import argparse
import math
import os
import time

from PIL import Image


def files(root):
    for d, _, names in sorted(os.walk(root)):
        for n in sorted(names):
            if n.lower().endswith((".jpg", ".jpeg", ".png")):
                yield os.path.join(d, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--crop-pct", type=float, default=0.875)
    ap.add_argument("--draft", action="store_true")
    a = ap.parse_args()
    scale = math.floor(a.size / a.crop_pct)
    paths = list(files(a.dir))
    t0 = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            if a.draft:
                im.draft("RGB", (scale, scale))
            im = im.convert("RGB")
            w, h = im.size
            if w <= h:
                size = (scale, int(scale * h / w))
            else:
                size = (int(scale * w / h), scale)
            im.resize(size, Image.BICUBIC)
    dt = time.perf_counter() - t0
    print("%d images in %.2f s: %.0f img/s (Pillow %s, draft %s)" %
          (len(paths), dt, len(paths) / dt, Image.__version__, "on" if a.draft else "off"))


if __name__ == "__main__":
    main()
