"""`vit export` against PyTorch: each timm fixture model is exported by the vit binary, the folder is
rebuilt from its config.json alone as timm would (model_args, the architecture's name for CLIP's
LayerNorm eps and QuickGELU, DeiT's distilled class) with tests/reference/timm_vit.py's modules,
its model.safetensors loaded with load_state_dict(strict=True), and its logits on the fixture picture
compared with the fixture's expected ones (PyTorch float64 on the original tensors).

With --timm SRC (a checkout of timm's source: pytorch-image-models, whose `timm` folder is put first on
the import path), each folder is also loaded by timm itself, in the two ways users load one:
`timm.create_model("local-dir:" + DIR, pretrained=True)` (the route of `hf-hub:` once the files are
downloaded: config.json's architecture, model_args and num_classes), and
`timm.create_model(architecture, pretrained=True, pretrained_cfg_overlay=dict(file=DIR +
"/model.safetensors", num_classes=K), **model_args)` with config.json's values (the overlay's num_classes
keeps timm from dropping the head as another architecture's). Both models get the fixture's input and
are compared with the same expected logits.
timm reads .safetensors through the `safetensors` package; where it is missing (Debian 12 has none), a
stand-in module that reads the format with this directory's reader is installed first.

A development check (PyTorch is not used at test time). Run from the repository root after `make build`:

    /usr/bin/python3 tests/reference/check_export.py [--timm SRC] [build/vit]

It prints one line per model (and per timm route) and exits non-zero on a mismatch.
"""

import argparse
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
           "patch_bias": not a.get("pre_norm", False),  # timm's PatchEmbed: bias=not pre_norm
           "act": "quick_gelu" if ("quickgelu" in arch or a.get("act_layer") == "quick_gelu")
           else a.get("act_layer", "gelu")}
    m = ViT(cfg)
    tensors, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    state = {k: torch.from_numpy(v.copy()).to(torch.float64) for k, v in tensors.items()}
    m.load_state_dict(state, strict=True)
    return m.eval(), conf["pretrained_cfg"]


def load_timm(src):
    """timm from its source folder, with a stand-in for the safetensors package where it is missing."""
    sys.path.insert(0, os.path.abspath(src))
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        import types
        package, module = types.ModuleType("safetensors"), types.ModuleType("safetensors.torch")

        def load_file(path, device="cpu"):
            tensors, _ = read_safetensors(str(path))
            return {k: torch.from_numpy(v.copy()).to(device) for k, v in tensors.items()}

        module.load_file = load_file
        package.torch = module
        sys.modules["safetensors"], sys.modules["safetensors.torch"] = package, module
    import timm
    return timm


def timm_models(timm, folder):
    """The folder loaded by timm: (route, model in float64) for each way of loading it, each with
    the folder's pretrained_cfg (its eval transform), as the hub's route reads config.json."""
    with open(os.path.join(folder, "config.json")) as f:
        conf = json.load(f)
    args = dict(conf["model_args"])
    args.setdefault("num_classes", conf["num_classes"])
    # The overlay's num_classes tells timm that the file's head fits the model's; without it timm
    # compares with the architecture's default (1000 classes) and drops the head from the file.
    overlay = dict(conf["pretrained_cfg"], file=os.path.join(folder, "model.safetensors"),
                   num_classes=conf["num_classes"])
    by_file = timm.create_model(conf["architecture"], pretrained=True, pretrained_cfg_overlay=overlay,
                                **args)
    models = [("timm file", by_file.double().eval())]
    # local-dir: is newer than the file route (timm 1.0.9 has not got it, 1.0.28 has).
    if hasattr(timm.models._hub, "load_model_config_from_path"):
        by_dir = timm.create_model("local-dir:" + folder, pretrained=True)
        models.append(("timm local-dir", by_dir.double().eval()))
    return models


def main(vit, timm_src):
    timm = load_timm(timm_src) if timm_src else None
    if timm:
        print("timm %s from %s" % (timm.__version__, timm_src))
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
            x = eval_input(photo, size, pre["crop_pct"], pre["mean"], pre["std"])
            want = torch.from_numpy(expected[name + ".logits"].copy()).to(torch.float64)
            arch = json.load(open(os.path.join(out, "config.json")))["architecture"]
            models = [("modules", m)] + (timm_models(timm, out) if timm else [])
            for route, model in models:
                with torch.no_grad():
                    got = model(x)
                err = (got - want).abs().max().item()
                ok = err < 1e-5 * max(1.0, want.abs().max().item())
                failures += not ok
                print("%-5s %-40s %-15s max |logits diff| %.3g %s" % (
                    name, arch, route, err, "ok" if ok else "MISMATCH"))
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="vit export against PyTorch (and timm)")
    parser.add_argument("vit", nargs="?", default="build/vit")
    parser.add_argument("--timm", help="timm's source folder (pytorch-image-models)")
    args = parser.parse_args()
    sys.exit(main(args.vit, args.timm))
