#!/usr/bin/env python3
"""Two measurements on trained checkpoints that docs/RECIPES.md reports ("Averaged weights and
mirrored test images"), kept so that they can be repeated. Neither is part of vitcpp.

  watch RUN_DIR
      While `vit train --out RUN_DIR` runs, copies RUN_DIR/last.safetensors after each epoch to
      RUN_DIR/snaps/ep<N>.safetensors; ends when RUN_DIR/done exists (touch it after the run).
  average OUT IN[:WEIGHT] ...
      Writes OUT: the weighted mean of the tensors of checkpoints of one run (the same model, so the
      same tensors at the same offsets), with the first file's header. Evaluate it with
      `vit eval --model OUT --data fashion-mnist --split val` (or test).
  flip CHECKPOINT [IDX_DIR]
      Test accuracy of a one-channel 28x28 checkpoint on Fashion-MNIST's test set, from its own
      logits, its mirror image's, and their mean. Needs PyTorch (Debian's python3-torch): the model
      is tests/reference/timm_vit.py's, and its plain accuracy is `vit eval`'s, which checks it.

numpy for watch and average; numpy and torch for flip.
"""
import gzip
import json
import os
import shutil
import struct
import sys
import time

import numpy as np


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def watch(run):
    os.makedirs(os.path.join(run, "snaps"), exist_ok=True)
    seen = set()
    while not os.path.exists(os.path.join(run, "done")):
        last = os.path.join(run, "last.safetensors")
        try:
            epoch = int(header(last)["__metadata__"]["epoch"])
            if epoch not in seen:
                tmp = os.path.join(run, "snaps", "ep%d.tmp" % epoch)
                shutil.copy(last, tmp)
                os.rename(tmp, os.path.join(run, "snaps", "ep%d.safetensors" % epoch))
                seen.add(epoch)
        except (OSError, ValueError, KeyError):
            pass  # not written yet, or being replaced
        time.sleep(1)


def average(out, specs):
    total, acc, head = 0.0, None, None
    for spec in specs:
        path, _, weight = spec.partition(":")
        weight = float(weight or 1)
        raw = open(path, "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        data = np.frombuffer(raw[8 + n :], dtype=np.float32).astype(np.float64)
        if acc is None:
            head, acc = raw[: 8 + n], np.zeros_like(data)
        if data.shape != acc.shape:
            sys.exit("%s holds another model than %s" % (path, specs[0]))
        acc += weight * data
        total += weight
    with open(out, "wb") as f:
        f.write(head + (acc / total).astype(np.float32).tobytes())


def flip(path, idx_dir):
    import torch

    # The project's PyTorch ViT (timm's layout and names) and safetensors reader.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "reference"))
    from make_fixtures import read_safetensors
    from timm_vit import ViT

    tensors, meta = read_safetensors(path)
    model = ViT(json.loads(meta["config"]), dtype=torch.float32)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    model.eval()
    norm = json.loads(meta["normalize"])

    def idx(name, skip):
        return np.frombuffer(gzip.open(os.path.join(idx_dir, name)).read()[skip:], dtype=np.uint8)

    images = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64))
    x = (torch.from_numpy(images.copy()).float() / 255 - norm["mean"][0]) / norm["std"][0]
    with torch.no_grad():
        plain, mirrored = model(x), model(x.flip(-1))
    for name, z in (("plain", plain), ("mirrored", mirrored), ("mean", plain + mirrored)):
        print("%-8s %.2f%%" % (name, 100 * (z.argmax(1) == labels).float().mean().item()))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "watch":
        watch(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "average":
        average(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "flip":
        flip(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "/usr/share/datasets/fashion-mnist")
    else:
        sys.exit(__doc__)
