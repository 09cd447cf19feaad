"""timm-format model files and their outputs, for the tests of vitcpp's timm loader.

Run from the repository root with Debian's system Python (PyTorch 1.13, torchvision 0.14, Pillow 9.4;
and python3-skimage, whose data folder has the photographs):

    /usr/bin/python3 tests/reference/make_timm_fixtures.py tests/fixtures/timm

It writes, from fixed seeds (byte-identical reruns):

  cls/config.json, cls/model.safetensors   a timm model folder as timm's push_to_hf_hub writes it:
        a ViT with a class token (global_pool token), 32x32x3, patch 8, D 64, 4 heads (given in
        model_args: not D / 64), depth 2, MLP 128, 5 classes with label_names, and a pretrained_cfg
        (crop_pct 0.9, bicubic, its own mean and std); tensors under timm's names, F32, metadata
        {"format": "pt"} as safetensors.torch writes
  avg.safetensors   a bare timm state dict: no class token, average pooling with fc_norm, D 64 (so
        64 / 64 = 1 head), depth 1, 3 classes
  photo.png         a 50x37 RGB picture (gradients, edges and noise)
  posembed.safetensors   "in" [1, 1 + 4 * 4, 8] and its resampling by timm's resample_abs_pos_embed
        (the class token's row kept, the grid through F.interpolate bicubic, antialias=True) to
        "out6" (6 x 6) and "out3" (3 x 3), in float32 as timm computes it
  dist/   a DeiT distilled folder (architecture deit_test_distilled_patch8_32: dist_token,
        head_dist; the logits are both heads' mean), 4 classes, ImageNet's mean and std
  clip/   a CLIP-like folder (architecture vit_test_patch8_clip_quickgelu_32: norm_pre and, as in
        timm's CLIP towers, no patch_embed.proj.bias; LayerNorm eps 1e-5, QuickGELU; also
        qk_norm), 3 classes
  reg.safetensors   a bare DINOv2-reg-like state dict: 4 register tokens, no_embed_class,
        LayerScale, 6 classes
  photos/rocket.jpg   a real photograph: Debian python3-skimage's data/rocket.jpg (640x427 JPEG),
        copied; photos/chelsea.jpg: its data/chelsea.png (451x300, a cat) saved by Pillow as a JPEG
        (quality 90, 4:2:0 chroma: what cameras and the web write)
  photos224/   a timm folder of a ViT at 224 (patch 16, D 32, 2 heads, depth 2, 10 named classes,
        timm's ViT defaults: crop_pct 0.9, bicubic, mean and std 0.5), whose logits for the two
        photographs after timm's eval transform (PIL decoding them) are "photos.rocket" and
        "photos.chelsea" [1, 10] in expected.safetensors
  expected.safetensors   "cls.logits" [1, 5]: the folder's model on photo.png after timm's eval
        transform (torchvision Resize(floor(32 / 0.9)) bicubic, CenterCrop(32), ToTensor,
        Normalize), in float64; "avg.logits" [1, 3] and "reg.logits" [1, 6]: the bare models after
        timm's ViT defaults (crop_pct 0.9, bicubic, mean and std 0.5); "dist.logits", "clip.logits"
        after their folders' pretrained_cfg

The models are tests/reference/timm_vit.py's (timm's layout and names), in float64 from weights
rounded to float32.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import write_safetensors  # noqa: E402
from timm_vit import ViT  # noqa: E402

torch.set_num_threads(1)


def model(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    m = ViT(cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            scale = 0.02 if name.endswith("weight") and p.dim() > 1 else 0.1
            if "norm" in name and name.endswith("weight"):
                v = 1 + 0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            else:
                v = scale * 5 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            if name.endswith(".gamma"):  # LayerScale: away from 1 so that it matters
                v = 0.5 + 0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(v.to(torch.float32).to(torch.float64))  # what the F32 file holds exactly
    return m.eval()


def eval_input(img, size, crop_pct, mean, std):
    t = T.Compose([T.Resize(math.floor(size / crop_pct), interpolation=T.InterpolationMode.BICUBIC),
                   T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
    return t(img).to(torch.float64).unsqueeze(0)


def main(out):
    os.makedirs(os.path.join(out, "cls"), exist_ok=True)
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:37, 0:50].astype(np.float64)
    planes = [127 + 90 * np.sin(x / (4 + k)) * np.cos(y / (6 - k)) + rng.normal(0, 20, (37, 50))
              + np.where((x + y + 5 * k) % 13 < 3, 60, 0) for k in range(3)]
    photo = Image.fromarray(np.clip(np.round(np.stack(planes, -1)), 0, 255).astype(np.uint8), "RGB")
    photo.save(os.path.join(out, "photo.png"))

    base = {"image_size": 32, "channels": 3, "patch_size": 8, "pos_embed": "learned",
            "qkv_bias": True, "ln_eps": 1e-6}
    cls_cfg = dict(base, dim=64, depth=2, heads=4, mlp_dim=128, num_classes=5, pool="cls")
    avg_cfg = dict(base, dim=64, depth=1, heads=1, mlp_dim=64, num_classes=3, pool="mean")
    mean, std = [0.48, 0.45, 0.40], [0.23, 0.22, 0.26]
    cls = model(cls_cfg, 1)
    avg = model(avg_cfg, 2)
    names = ["apple", "bear", "cloud", "door", "egg"]
    config = {
        "architecture": "vit_test_patch8_32",
        "num_classes": 5,
        "num_features": 64,
        "global_pool": "token",
        "label_names": names,
        "model_args": {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 2,
                       "num_heads": 4, "mlp_ratio": 2.0},
        "pretrained_cfg": {"tag": "fixture", "custom_load": False, "input_size": [3, 32, 32],
                           "fixed_input_size": True, "interpolation": "bicubic",
                           "crop_pct": 0.9, "crop_mode": "center", "mean": mean, "std": std,
                           "num_classes": 5, "pool_size": None, "first_conv": "patch_embed.proj",
                           "classifier": "head"},
    }
    with open(os.path.join(out, "cls", "config.json"), "w") as f:
        json.dump(config, f, indent=4)
    write_safetensors(os.path.join(out, "cls", "model.safetensors"),
                      list(cls.state_dict().items()), {"format": "pt"})
    write_safetensors(os.path.join(out, "avg.safetensors"), list(avg.state_dict().items()),
                      {"format": "pt"})
    with torch.no_grad():
        cls_logits = cls(eval_input(photo, 32, 0.9, mean, std))
        avg_logits = avg(eval_input(photo, 32, 0.9, [0.5] * 3, [0.5] * 3))
    g = torch.Generator().manual_seed(3)
    pos = torch.randn(1, 17, 8, generator=g, dtype=torch.float32)

    def resample(posemb, new):  # timm.layers.pos_embed.resample_abs_pos_embed, 1 prefix token
        prefix, grid = posemb[:, :1], posemb[:, 1:]
        grid = grid.reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
        grid = torch.nn.functional.interpolate(grid, size=(new, new), mode="bicubic",
                                               antialias=True)
        return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, -1, 8)], dim=1)

    write_safetensors(os.path.join(out, "posembed.safetensors"),
                      [("in", pos), ("out6", resample(pos, 6)), ("out3", resample(pos, 3))], {})
    # timm's variants: two folders and a bare file.
    variants = {}
    for name, cfg, seed, arch, args, pre in [
            ("dist", dict(base, dim=64, depth=2, heads=2, mlp_dim=128, num_classes=4, pool="cls",
                          dist_token=True),
             4, "deit_test_distilled_patch8_32", {"num_heads": 2},
             {"crop_pct": 0.875, "interpolation": "bicubic", "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225]}),
            ("clip", dict(base, dim=64, depth=2, heads=4, mlp_dim=256, num_classes=3, pool="cls",
                          ln_eps=1e-5, norm_pre=True, patch_bias=False, qk_norm=True,
                          act="quick_gelu"),
             5, "vit_test_patch8_clip_quickgelu_32",
             {"num_heads": 4, "pre_norm": True, "qk_norm": True},
             {"crop_pct": 1.0, "interpolation": "bicubic",
              "mean": [0.48145466, 0.4578275, 0.40821073],
              "std": [0.26862954, 0.26130258, 0.27577711]}),
            ("reg", dict(base, dim=64, depth=2, heads=1, mlp_dim=128, num_classes=6, pool="cls",
                         reg_tokens=4, no_embed_class=True, layer_scale=True),
             6, None, None, {"crop_pct": 0.9, "interpolation": "bicubic", "mean": [0.5] * 3,
                             "std": [0.5] * 3})]:
        vm = model(cfg, seed)
        tensors = list(vm.state_dict().items())
        if arch is None:
            write_safetensors(os.path.join(out, name + ".safetensors"), tensors, {"format": "pt"})
        else:
            os.makedirs(os.path.join(out, name), exist_ok=True)
            conf = {"architecture": arch, "num_classes": cfg["num_classes"], "num_features": 64,
                    "global_pool": "token",
                    "model_args": dict(args, img_size=32, patch_size=8, embed_dim=64, depth=2),
                    "pretrained_cfg": {"input_size": [3, 32, 32], "interpolation":
                                       pre["interpolation"], "crop_pct": pre["crop_pct"],
                                       "crop_mode": "center", "mean": pre["mean"],
                                       "std": pre["std"], "num_classes": cfg["num_classes"]}}
            with open(os.path.join(out, name, "config.json"), "w") as f:
                json.dump(conf, f, indent=4)
            write_safetensors(os.path.join(out, name, "model.safetensors"), tensors,
                              {"format": "pt"})
        with torch.no_grad():
            variants[name + ".logits"] = vm(eval_input(photo, 32, pre["crop_pct"], pre["mean"],
                                                       pre["std"]))
    # Real photographs through timm's whole eval pipeline: PIL's JPEG decoding and bicubic resize.
    skimage = "/usr/lib/python3/dist-packages/skimage/data"
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    with open(os.path.join(skimage, "rocket.jpg"), "rb") as f:
        rocket = f.read()
    with open(os.path.join(out, "photos", "rocket.jpg"), "wb") as f:
        f.write(rocket)
    Image.open(os.path.join(skimage, "chelsea.png")).convert("RGB").save(
        os.path.join(out, "photos", "chelsea.jpg"), quality=90, subsampling=2)
    cfg224 = dict(base, image_size=224, patch_size=16, dim=32, depth=2, heads=2, mlp_dim=64,
                  num_classes=10, pool="cls")
    m224 = model(cfg224, 7)
    os.makedirs(os.path.join(out, "photos224"), exist_ok=True)
    labels = ["class %d" % k for k in range(10)]
    conf = {"architecture": "vit_test_patch16_224", "num_classes": 10, "num_features": 32,
            "global_pool": "token", "label_names": labels,
            "model_args": {"img_size": 224, "patch_size": 16, "embed_dim": 32, "depth": 2,
                           "num_heads": 2, "mlp_ratio": 2.0}}
    with open(os.path.join(out, "photos224", "config.json"), "w") as f:
        json.dump(conf, f, indent=4)
    write_safetensors(os.path.join(out, "photos224", "model.safetensors"),
                      list(m224.state_dict().items()), {"format": "pt"})
    for name in ("rocket", "chelsea"):
        img = Image.open(os.path.join(out, "photos", name + ".jpg")).convert("RGB")
        with torch.no_grad():
            variants["photos." + name] = m224(eval_input(img, 224, 0.9, [0.5] * 3, [0.5] * 3))
    write_safetensors(os.path.join(out, "expected.safetensors"),
                      [("cls.logits", cls_logits), ("avg.logits", avg_logits)] +
                      sorted(variants.items()), {})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/timm")
