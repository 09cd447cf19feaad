"""Pillow / torchvision reference fixtures for vitcpp's image transforms.

Run from the repository root with Debian's system Python (Pillow 9.4, torchvision 0.14):

    /usr/bin/python3 tests/reference/make_transform_fixtures.py tests/fixtures

It writes transforms.safetensors (pixel values as exact F32 integers):

  src.<name>             source images [h, w, c] made here from a fixed seed: smooth gradients,
                         edges and noise (what resampling filters must get right)
  resize.<i>             Image.resize((w, h), BILINEAR, BICUBIC or NEAREST) of a source, [c, h, w]
  eval.<i>               timm's eval transform (transforms_imagenet_eval) of a source, [c, S, S]:
                         center: torchvision Resize(floor(S / crop_pct)) + CenterCrop(S);
                         squash: Resize((s, s)) + CenterCrop(S); border: timm's ResizeKeepRatio
                         (longest=1) + CenterCropOrPad(S, fill=round(255 * mean)), written here
                         from timm's source (timm is not packaged for Debian)
  rrc.<i>                torchvision RandomResizedCrop.get_params on a w x h image with
                         torch.manual_seed(i): [w, h, then per attempt the scale and log-ratio
                         draws, then top, left, box height, box width]
  __metadata__ "cases":  JSON describing every case (source, sizes, filter, mode, crop_pct).

Fixed seeds: reruns produce byte-identical files.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import write_safetensors  # noqa: E402  (the shared F32 writer)

FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
TV = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC,
      "nearest": T.InterpolationMode.NEAREST}
IMAGENET_MEAN = (0.485, 0.456, 0.406)


def source(rng, w, h, c):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for k in range(c):
        v = 127 + 100 * np.sin(x / (3 + 2 * k)) * np.cos(y / (5 + k))
        v += np.where((x + 2 * y + 7 * k) % 17 < 4, 80, 0)  # hard edges: the filters' overshoot
        v += rng.normal(0, 25, size=(h, w))
        planes.append(np.clip(np.round(v), 0, 255))
    return np.stack(planes, axis=-1).astype(np.uint8)


def to_pil(a):
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a, "L" if a.shape[2] == 1 else "RGB")


def chw(img):
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.transpose(2, 0, 1).astype(np.float64).copy())


def resize_keep_ratio_longest(img, size, interpolation):
    # timm.data.transforms.ResizeKeepRatio.get_params with longest=1.0 and no random scaling.
    w, h = img.size
    ratio = max(h / size, w / size)
    new_h, new_w = [round(x * 1.0 / ratio) for x in (h, w)]
    return TF.resize(img, [new_h, new_w], TV[interpolation])


def center_crop_or_pad(img, size, fill):
    # timm.data.transforms.center_crop_or_pad for PIL images.
    w, h = img.size
    if size > w or size > h:
        pad = [(size - w) // 2 if size > w else 0, (size - h) // 2 if size > h else 0,
               (size - w + 1) // 2 if size > w else 0, (size - h + 1) // 2 if size > h else 0]
        img = TF.pad(img, pad, fill=fill)
        w, h = img.size
        if w == size and h == size:
            return img
    return TF.crop(img, int(round((h - size) / 2.0)), int(round((w - size) / 2.0)), size, size)


def eval_transform(img, size, crop_pct, mode, interpolation):
    scale = math.floor(size / crop_pct)
    if mode == "squash":
        img = TF.resize(img, [scale, scale], TV[interpolation])
        return TF.center_crop(img, [size, size])
    if mode == "border":
        fill = [round(255 * v) for v in IMAGENET_MEAN][: len(img.getbands())]
        fill = fill[0] if len(fill) == 1 else tuple(fill)
        return center_crop_or_pad(resize_keep_ratio_longest(img, scale, interpolation), size, fill)
    img = TF.resize(img, scale, TV[interpolation])
    return TF.center_crop(img, [size, size])


def rrc_draws(seed, w, h, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
    """The draws torchvision's RandomResizedCrop.get_params makes, replayed, and its box."""
    img = Image.new("L", (w, h))
    torch.manual_seed(seed)
    top, left, bh, bw = T.RandomResizedCrop.get_params(img, list(scale), list(ratio))
    torch.manual_seed(seed)
    area = w * h
    log_ratio = torch.log(torch.tensor(ratio))
    draws = []
    for _ in range(10):
        u = torch.empty(1).uniform_(scale[0], scale[1]).item()
        r = torch.empty(1).uniform_(log_ratio[0], log_ratio[1]).item()
        draws += [u, r]
        aspect = torch.exp(torch.tensor([r], dtype=torch.float32)).item()  # as torchvision
        cw = int(round(math.sqrt(area * u * aspect)))
        ch = int(round(math.sqrt(area * u / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            assert (ch, cw) == (bh, bw), "the replay must take the draws get_params took"
            break
    return [w, h] + draws + [top, left, bh, bw]


def main(out_dir):
    rng = np.random.default_rng(7)
    sources = {"a": source(rng, 61, 47, 3), "b": source(rng, 40, 90, 1),
               "c": source(rng, 160, 120, 3)}
    tensors = [("src." + k, torch.from_numpy(v.astype(np.float64))) for k, v in sources.items()]
    cases = {"resize": [], "eval": [], "rrc": []}
    resizes = [("a", 24, 18, "bilinear"), ("a", 24, 18, "bicubic"), ("a", 100, 80, "bilinear"),
               ("a", 100, 80, "bicubic"), ("a", 61, 20, "bicubic"), ("a", 30, 47, "bilinear"),
               ("b", 17, 33, "bicubic"), ("b", 7, 90, "bilinear"), ("c", 37, 29, "bicubic"),
               ("c", 64, 48, "bilinear"), ("c", 1, 1, "bicubic"), ("c", 37, 29, "nearest"),
               ("a", 100, 80, "nearest"), ("b", 7, 90, "nearest"), ("c", 160, 41, "nearest")]
    for i, (src, w, h, f) in enumerate(resizes):
        tensors.append(("resize.%d" % i, chw(to_pil(sources[src]).resize((w, h), FILTERS[f]))))
        cases["resize"].append({"src": src, "w": w, "h": h, "filter": f})
    evals = [("c", 32, 0.875, "center", "bicubic"), ("c", 32, 0.9, "center", "bilinear"),
             ("b", 20, 1.0, "center", "bicubic"), ("b", 24, 0.95, "center", "bicubic"),
             ("a", 24, 0.875, "squash", "bicubic"), ("c", 32, 0.875, "border", "bicubic"),
             ("a", 40, 1.0, "border", "bilinear"), ("b", 16, 0.8, "border", "bicubic"),
             ("c", 32, 0.875, "center", "nearest")]
    for i, (src, size, pct, mode, f) in enumerate(evals):
        out = eval_transform(to_pil(sources[src]), size, pct, mode, f)
        tensors.append(("eval.%d" % i, chw(out)))
        cases["eval"].append({"src": src, "size": size, "crop_pct": pct, "mode": mode,
                              "filter": f})
    shapes = [(61, 47), (500, 375), (375, 500), (32, 32), (5, 200), (224, 224), (28, 28), (9, 7)]
    for i in range(24):
        w, h = shapes[i % len(shapes)]
        row = rrc_draws(i, w, h)
        tensors.append(("rrc.%d" % i, torch.tensor(row, dtype=torch.float64)))
        cases["rrc"].append({"seed": i})
    write_safetensors(os.path.join(out_dir, "transforms.safetensors"), tensors,
                      {"cases": json.dumps(cases, separators=(",", ":"))})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
