"""Reference attention maps (rollout, last block, heads) for tests/test_attention.cpp.

    /usr/bin/python3 tests/reference/make_attention_fixture.py tests/fixtures

Writes attention.safetensors: for two token layouts, random attention probabilities
att [L, H, N, N] (each row a softmax of random scores, rounded to float32 so the C++ side reads
exactly these values) and the maps computed from them in float64 with whole-matrix products, a
different route from vitcpp's (which carries one row vector through the blocks):
  rollout = row q of A'_L ... A'_1, A'_l = (mean_h att[l, h] + I) / 2   (Abnar & Zuidema 2020)
  last    = row q of mean_h att[L-1, h]
  heads   = row q of att[L-1, h], for each h
q is the class token's row (layout "cls": 1 prefix token) or, for a model without a class token
("mean": 2 register tokens, mean pooling), the mean of the patch tokens' rows; a map keeps the
patch tokens' columns. Grid 3 (9 patches), 3 blocks, 2 heads.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import write_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)
L, H, GRID = 3, 2, 3
NP = GRID * GRID


def layout(name, prefix, class_token, seed):
    g = torch.Generator()
    g.manual_seed(seed)
    n = prefix + NP
    scores = torch.randn(L, H, n, n, generator=g) * 2.0
    att = torch.softmax(scores, dim=-1).to(torch.float32).to(torch.float64)
    if class_token:
        q = torch.zeros(n)
        q[0] = 1.0
    else:
        q = torch.zeros(n)
        q[prefix:] = 1.0 / NP
    eye = torch.eye(n)
    rollout = eye
    for l in range(L):  # A'_l ... A'_1, the later blocks on the left
        rollout = ((att[l].mean(0) + eye) / 2) @ rollout
    maps = {
        "rollout": (q @ rollout)[prefix:].unsqueeze(0),
        "last": (q @ att[L - 1].mean(0))[prefix:].unsqueeze(0),
        "heads": torch.stack([(q @ att[L - 1, h])[prefix:] for h in range(H)]),
    }
    out = [(name + ".att", att)]
    out += [(name + "." + k, v) for k, v in maps.items()]
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures"
    tensors = layout("cls", 1, True, 1) + layout("mean", 2, False, 2)
    meta = {"depth": str(L), "heads": str(H), "grid": str(GRID),
            "generator": "tests/reference/make_attention_fixture.py"}
    path = os.path.join(out_dir, "attention.safetensors")
    write_safetensors(path, tensors, meta)
    print("wrote", path)


if __name__ == "__main__":
    main()
