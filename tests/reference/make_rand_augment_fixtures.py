"""Pillow reference fixtures for vitcpp's RandAugment operations (src/data/rand_augment.cpp).

Run from the repository root with Debian's system Python (Pillow 9.4):

    /usr/bin/python3 tests/reference/make_rand_augment_fixtures.py tests/fixtures

timm is not packaged for Debian: each op below is called the way timm's
timm/data/auto_augment.py calls Pillow (ImageOps.autocontrast / equalize / invert / posterize /
solarize, its solarize_add lookup table, ImageEnhance.Color / Contrast / Brightness / Sharpness,
Image.rotate and Image.transform(AFFINE) with resample and fillcolor). It writes
rand_augment.safetensors (pixel values as exact F32 integers):

  src.<name>             source images [h, w, c] made here from a fixed seed
  out.<i>                case i's result [h, w, c]
  __metadata__ "cases":  JSON list of {source, op, arg, filter}

Fixed seeds: reruns produce byte-identical files.
"""

import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import write_safetensors  # noqa: E402  (the shared F32 writer)
from make_transform_fixtures import source  # noqa: E402  (gradients, edges and noise)

FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
# timm's fill: round(255 * mean) of the normalisation (ImageNet's for RGB; a gray level for L).
FILL = {1: (128,), 3: (124, 116, 104)}


def to_pil(a):
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, "L" if a.shape[2] == 1 else "RGB")


def apply(img, op, arg, filt):
    kw = dict(resample=FILTERS[filt], fillcolor=FILL[len(img.getbands())])
    if op == "AutoContrast":
        return ImageOps.autocontrast(img)
    if op == "Equalize":
        return ImageOps.equalize(img)
    if op == "Invert":
        return ImageOps.invert(img)
    if op == "Posterize":
        return img if arg >= 8 else ImageOps.posterize(img, int(arg))
    if op == "Solarize":
        return ImageOps.solarize(img, arg)
    if op == "SolarizeAdd":  # timm's solarize_add, thresh 128
        lut = [min(255, i + int(arg)) if i < 128 else i for i in range(256)]
        return img.point(lut * len(img.getbands()))
    if op == "Color":
        return ImageEnhance.Color(img).enhance(arg)
    if op == "Contrast":
        return ImageEnhance.Contrast(img).enhance(arg)
    if op == "Brightness":
        return ImageEnhance.Brightness(img).enhance(arg)
    if op == "Sharpness":
        return ImageEnhance.Sharpness(img).enhance(arg)
    if op == "Rotate":
        return img.rotate(arg, **kw)
    if op == "ShearX":
        return img.transform(img.size, Image.AFFINE, (1, arg, 0, 0, 1, 0), **kw)
    if op == "ShearY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, arg, 1, 0), **kw)
    if op == "TranslateXRel":
        return img.transform(img.size, Image.AFFINE, (1, 0, arg * img.size[0], 0, 1, 0), **kw)
    if op == "TranslateYRel":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, arg * img.size[1]), **kw)
    raise ValueError(op)


def main(out_dir):
    rng = np.random.default_rng(2026)
    rgb = source(rng, 19, 15, 3)
    sources = {
        "rgb": rgb,
        "dim": (rgb.astype(np.int32) // 3 + 70).astype(np.uint8),  # a narrow range of levels
        "gray": source(rng, 17, 13, 1),
        "square": source(rng, 12, 12, 1),
    }
    # Arguments as timm's level functions make them (e.g. m9: 1.72, increasing 1 +- 0.81).
    pointwise = [("AutoContrast", 0), ("Equalize", 0), ("Invert", 0)]
    pointwise += [("Posterize", b) for b in (0, 1, 4, 7, 8)]
    pointwise += [("Solarize", t) for t in (0, 26, 128, 231, 256)]
    pointwise += [("SolarizeAdd", a) for a in (0, 55, 99)]
    for op in ("Color", "Contrast", "Brightness", "Sharpness"):
        pointwise += [(op, f) for f in (0.0, 0.1, 0.19, 0.64, 1.0, 1.45, 1.72, 1.81, 1.9)]
    geometric = [("Rotate", d) for d in (13.5, -27.0, 30.0, 0.0, 180.0, -90.0)]
    geometric += [(op, s) for op in ("ShearX", "ShearY") for s in (0.27, -0.135)]
    geometric += [(op, t) for op in ("TranslateXRel", "TranslateYRel") for t in (0.405, -0.2)]

    cases = []
    for name in ("rgb", "dim", "gray"):
        cases += [dict(source=name, op=op, arg=arg, filter="bilinear") for op, arg in pointwise]
    for name in ("rgb", "gray"):
        cases += [dict(source=name, op=op, arg=arg, filter=f)
                  for op, arg in geometric for f in FILTERS]
    cases += [dict(source="square", op="Rotate", arg=d, filter=f)
              for d in (90.0, 270.0, -90.0, 37.0) for f in FILTERS]

    tensors = [("src." + k, torch.from_numpy(v.astype(np.float64))) for k, v in sources.items()]
    for i, c in enumerate(cases):
        out = np.asarray(apply(to_pil(sources[c["source"]]), c["op"], c["arg"], c["filter"]))
        if out.ndim == 2:
            out = out[:, :, None]
        tensors.append(("out.%d" % i, torch.from_numpy(out.astype(np.float64))))
    write_safetensors(os.path.join(out_dir, "rand_augment.safetensors"), tensors,
                      {"cases": json.dumps(cases)})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
