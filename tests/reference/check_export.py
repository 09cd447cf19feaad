"""`vit export` against PyTorch: each timm fixture model is exported by the vit binary, the folder is
rebuilt from its config.json alone as timm would (model_args, the architecture's name for CLIP's
LayerNorm eps and QuickGELU, DeiT's distilled class) with tests/reference/timm_vit.py's modules,
its model.safetensors loaded with load_state_dict(strict=True), and its logits on the fixture picture
compared with the fixture's expected ones (PyTorch float64 on the original tensors).

A development check (PyTorch is not used at test time). Run from the repository root after `make build`:

    /usr/bin/python3 tests/reference/check_export.py [build/vit]

It prints one line per model and exits non-zero on a mismatch.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import read_safetensors  # noqa: E402
from make_timm_fixtures import eval_input  # noqa: E402
from timm_vit import ViT  # noqa: E402
from PIL import Image  # noqa: E402

FIXTURES = "tests/fixtures/timm"


def model_from_folder(folder):
    """timm_vit's ViT as timm.create_model(architecture, **model_args) would build it."""
    with open(os.path.join(folder, "config.json")) as f:
        conf = json.load(f)
    a, arch = conf["model_args"], conf["architecture"]
    d = a["embed_dim"]
    cfg = {"image_size": a["img_size"], "channels": a.get("in_chans", 3),
           "patch_size": a["patch_size"], "dim": d, "depth": a["depth"], "heads": a["num_heads"],
           "mlp_dim": int(d * a.get("mlp_ratio", 4.0)), "num_classes": conf["num_classes"],
           "pos_embed": "learned", "pool": "cls" if a.get("global_pool", "token") == "token"
           else "mean",
           # timm: fc_norm None is True for average pooling; a class token beside it is kept.
           "mean_class_token": a.get("global_pool") == "avg" and a.get("class_token", True),
           "mean_after_norm": a.get("global_pool") == "avg" and a.get("fc_norm") is False,
           "qkv_bias": a.get("qkv_bias", True),
           "ln_eps": 1e-5 if "_clip_" in arch else 1e-6,  # timm's CLIP norm_layer
           "reg_tokens": a.get("reg_tokens", 0), "dist_token": "distilled" in arch,
           "no_embed_class": a.get("no_embed_class", False),
           "layer_scale": a.get("init_values") is not None,
           "norm_pre": a.get("pre_norm", False), "qk_norm": a.get("qk_norm", False),
           "act": "quick_gelu" if ("quickgelu" in arch or a.get("act_layer") == "quick_gelu")
           else "gelu"}
    m = ViT(cfg)
    tensors, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    state = {k: torch.from_numpy(v.copy()).to(torch.float64) for k, v in tensors.items()}
    m.load_state_dict(state, strict=True)
    return m.eval(), conf["pretrained_cfg"]


def main(vit):
    expected, _ = read_safetensors(os.path.join(FIXTURES, "expected.safetensors"))
    photo = Image.open(os.path.join(FIXTURES, "photo.png")).convert("RGB")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in [("cls", "cls"), ("avg", "avg.safetensors"), ("dist", "dist"),
                             ("clip", "clip"), ("reg", "reg.safetensors")]:
            out = os.path.join(tmp, name)
            subprocess.run([vit, "export", "--model", os.path.join(FIXTURES, source), "--out", out],
                           check=True, stdout=subprocess.DEVNULL)
            m, pre = model_from_folder(out)
            size = pre["input_size"][1]
            with torch.no_grad():
                got = m(eval_input(photo, size, pre["crop_pct"], pre["mean"], pre["std"]))
            want = torch.from_numpy(expected[name + ".logits"].copy()).to(torch.float64)
            err = (got - want).abs().max().item()
            ok = err < 1e-5 * max(1.0, want.abs().max().item())
            failures += not ok
            print("%-5s %-40s max |logits diff| %.3g %s" % (name, json.load(open(
                os.path.join(out, "config.json")))["architecture"], err, "ok" if ok else "MISMATCH"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/vit"))
