"""timm's own ViTs through vit: each model is built by timm itself (timm.create_model, at a small
width), every parameter perturbed so that no tensor keeps its initial value (zero biases, unit norms),
and saved as timm saves a model for the Hugging Face hub (save_config_for_hf's config.json, the
state dict as model.safetensors). `vit predict --json` on the folder must give timm's logits (timm's
eval transform of the fixture photo, its model in float64) within 1e-4 of each logit's size, as the
C++ tests ask of the fixtures; `vit export` of the folder must load back into timm strictly with
the same logits. Architectures vitcpp does not have must be refused with a message naming what is
missing. And every timm-named preset of `vit info` must have the parameter count timm's model of that
name has, with the same number of classes. Last, vitcpp's own checkpoint (the demo's tiny28: one
channel, 28 pixels) exported must give in timm the logits `vit predict` gives from the checkpoint.

A development check, as tests/reference/check_export.py (it needs timm's source, which Debian does
not package, and PyTorch, which tests never use). From the repository root after `make build`:

    git clone https://github.com/huggingface/pytorch-image-models /tmp/timm-src
    /usr/bin/python3 tests/reference/check_timm.py --timm /tmp/timm-src [build/vit]

It prints one line per architecture and exits non-zero on a mismatch.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_export import load_timm, timm_models  # noqa: E402
from make_fixtures import write_safetensors  # noqa: E402
from PIL import Image  # noqa: E402

PHOTO = "tests/fixtures/timm/photo.png"
SMALL = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=7)

# (name, architecture, model_args over SMALL): timm's families that vitcpp reads.
SUPPORTED = [
    ("cls token", "vit_base_patch16_224", {}),
    ("avg + fc_norm", "vit_base_patch16_224", dict(global_pool="avg", class_token=False)),
    ("avg beside cls", "vit_base_patch16_224", dict(global_pool="avg")),
    ("norm before avg", "vit_base_patch16_224",
     dict(global_pool="avg", class_token=False, fc_norm=False)),
    ("no qkv bias", "vit_base_patch16_224", dict(qkv_bias=False)),
    ("qk_norm", "vit_base_patch16_224", dict(qk_norm=True)),
    ("LayerScale", "vit_base_patch16_224", dict(init_values=1e-5)),
    ("DeiT distilled", "deit_base_distilled_patch16_224", {}),
    ("CLIP", "vit_base_patch16_clip_224", {}),
    ("CLIP QuickGELU", "vit_base_patch16_clip_quickgelu_224", {}),
    ("DINOv2 + registers", "vit_small_patch14_reg4_dinov2",
     dict(img_size=28, patch_size=14)),
    ("mlp_ratio 2", "vit_base_patch16_224", dict(mlp_ratio=2.0)),
    # An input size the patch does not divide (as SigLIP so400m's 384 in patches of 14).
    ("input size 36, patch 8", "vit_base_patch16_224", dict(img_size=36)),
    # SigLIP 2's gap tower: the tanh GELU comes from the architecture's name alone.
    ("SigLIP 2 gap, gelu_tanh", "vit_base_patch32_siglip_gap_256",
     dict(img_size=32, patch_size=8)),
]
# (name, architecture, model_args over SMALL, a word the refusal must hold).
REFUSED = [
    ("SwiGLU MLP", "vit_giant_patch14_dinov2", dict(img_size=28, patch_size=14, mlp_ratio=4.0),
     "SwiGLU"),
    ("attention pooling", "vit_base_patch16_siglip_224", {}, "attn_pool"),
]


def build(timm, arch, args, seed):
    torch.manual_seed(seed)
    model_args = dict(SMALL, **args)
    size = model_args["img_size"]
    m = timm.create_model(arch, pretrained=False, **model_args,
                          pretrained_cfg_overlay=dict(input_size=(3, size, size)))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval(), model_args


def save_folder(timm, model, model_args, folder):
    """What timm's save_for_hf writes (less its check that huggingface_hub is installed)."""
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      list(model.state_dict().items()), {"format": "pt"})
    timm.models._hub.save_config_for_hf(model, Path(folder, "config.json"), model_args=model_args)


def check_own_checkpoint(timm, vit, tmp):
    """The demo's tiny28 checkpoint, exported, against vit predict on a 28x28 grey picture."""
    import numpy as np
    picture = os.path.join(tmp, "grey28.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8),
                    "L").save(picture)
    checkpoint = "tests/fixtures/demo_tiny28.f16.safetensors"
    out = os.path.join(tmp, "demo")
    subprocess.run([vit, "export", "--model", checkpoint, "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    want = vit_logits(vit, checkpoint, picture, ("--fit", "none"))
    failures = 0
    for route, model in timm_models(timm, out):
        err, ok = close(timm_logits(timm, model, Image.open(picture)), want)
        failures += not ok
        print("%-20s %-38s %s %.3g %s" % ("vitcpp checkpoint", "tiny28 (demo)", route, err,
                                         "ok" if ok else "MISMATCH"))
    return failures


def timm_logits(timm, model, photo):
    cfg = timm.data.resolve_data_config({}, model=model)
    x = timm.data.create_transform(**cfg)(photo).unsqueeze(0).to(torch.float64)
    with torch.no_grad():
        return model.double()(x)[0]


def vit_logits(vit, folder, image=PHOTO, extra=()):
    out = subprocess.run([vit, "predict", "--model", folder, "--json", "--invert", "off", *extra,
                          image], check=True, capture_output=True, text=True).stdout
    return torch.tensor(json.loads(out.splitlines()[0])["logits"], dtype=torch.float64)


def close(got, want):
    err = (got - want).abs().max().item()
    return err, err < 1e-4 * max(1.0, want.abs().max().item())


def check_presets(timm, vit):
    """Each timm-named preset's parameter count against timm's model of the name, same head."""
    text = subprocess.run([vit, "info", "--help"], capture_output=True, text=True, check=True).stdout
    names = [line.split(":")[0].strip() for line in text.split("Presets:")[1].splitlines()
             if line.startswith("  vit_") or line.startswith("  deit")]
    failures = 0
    for name in names:
        ours = json.loads(subprocess.run([vit, "info", "--preset", name, "--json"], check=True,
                                         capture_output=True, text=True).stdout)
        m = timm.create_model(name, pretrained=False, num_classes=ours["config"]["num_classes"])
        n = sum(p.numel() for p in m.parameters())
        failures += n != ours["params"]
        if n != ours["params"]:
            print("preset %-36s vit %d parameters, timm %d MISMATCH" % (name, ours["params"], n))
    print("presets: %d of timm's names, %d with timm's parameter count" % (
        len(names), len(names) - failures))
    return failures


def main(vit, timm_src):
    timm = load_timm(timm_src)
    print("timm %s from %s" % (timm.__version__, timm_src))
    photo = Image.open(PHOTO).convert("RGB")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, arch, args) in enumerate(SUPPORTED):
            model, model_args = build(timm, arch, args, i)
            folder = os.path.join(tmp, "m%d" % i)
            save_folder(timm, model, model_args, folder)
            want = timm_logits(timm, model, photo)
            err, ok = close(vit_logits(vit, folder), want)
            # vit export of the folder, read back by timm strictly.
            out = os.path.join(tmp, "e%d" % i)
            subprocess.run([vit, "export", "--model", folder, "--out", out], check=True,
                           stdout=subprocess.DEVNULL)
            # Every route timm has (the file; local-dir where this timm has it).
            backs = [close(timm_logits(timm, back, photo), want)
                     for _, back in timm_models(timm, out)]
            err_back, ok_back = max(e for e, _ in backs), all(o for _, o in backs)
            failures += not (ok and ok_back)
            print("%-20s %-38s vit %.3g, export -> timm %.3g %s" % (
                name, arch, err, err_back, "ok" if ok and ok_back else "MISMATCH"))
        for i, (name, arch, args, word) in enumerate(REFUSED):
            model, model_args = build(timm, arch, args, 100 + i)
            folder = os.path.join(tmp, "r%d" % i)
            save_folder(timm, model, model_args, folder)
            r = subprocess.run([vit, "predict", "--model", folder, PHOTO], capture_output=True,
                               text=True)
            ok = r.returncode != 0 and word in r.stderr
            failures += not ok
            print("%-20s %-38s refused (%d): %s %s" % (name, arch, r.returncode,
                                                      r.stderr.strip()[:90],
                                                      "ok" if ok else "NOT REFUSED AS ASKED"))
        failures += check_own_checkpoint(timm, vit, tmp)
    failures += check_presets(timm, vit)
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="timm's own ViTs through vit")
    parser.add_argument("vit", nargs="?", default="build/vit")
    parser.add_argument("--timm", required=True, help="timm's source folder")
    args = parser.parse_args()
    sys.exit(main(args.vit, args.timm))
