#!/usr/bin/python3
"""The PyTorch peer of `vit bench`: the same ViT shapes in idiomatic PyTorch, timed the same way.

    /usr/bin/python3 bench/pytorch_peer.py --preset tiny28 --batch 128 --threads 2 [--mode both]
                                           [--steps 10] [--warmup 2] [--micro-batch M] [--json]

timm-style model (Conv2d patch embedding, class token, learned positions, pre-norm blocks with a
fused qkv Linear, batched attention (matmul + softmax), nn.LayerNorm, nn.GELU, final LayerNorm,
head). A training step is forward, cross-entropy with label smoothing 0.1, backward,
clip_grad_norm_(1.0) and AdamW (weight decay on matrices); inference runs the model in
torch.inference_mode(). FLOPs are counted as vitcpp counts them (Config::forward_flops): 2*m*n*k
over every matmul including QK^T and AV; training counts 3x the forward.

With --micro-batch M a training step runs forward and backward M images at a time, summing the
gradients (gradient accumulation, each piece's loss weighted by its share of the batch), and
inference runs M images at a time: what vitcpp does (`vit bench` reports its M), offered to
PyTorch too (bench/compare.py keeps PyTorch's faster way).

Fairness: PyTorch uses `--threads` intra-op threads; OpenBLAS's own thread pool is limited to one
thread (OPENBLAS_NUM_THREADS=1, set below before torch loads), since otherwise its threads and
torch's fight over the cores and PyTorch runs 1.7-3.7x slower than it should.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

PRESETS = {
    # image, channels, patch, dim, depth, heads, mlp, classes
    "seed": (28, 1, 4, 8, 2, 2, 32, 10),
    "tiny28": (28, 1, 4, 64, 6, 4, 256, 10),
    "vit_tiny_patch16_224": (224, 3, 16, 192, 12, 3, 768, 1000),
    "vit_small_patch16_224": (224, 3, 16, 384, 12, 6, 1536, 1000),
    "vit_base_patch16_224": (224, 3, 16, 768, 12, 12, 3072, 1000),
}


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, D = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = (q @ k.transpose(-2, -1)) * self.scale
        att = att.softmax(dim=-1)
        x = (att @ v).transpose(1, 2).reshape(B, N, D)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, image, channels, patch, dim, depth, heads, mlp, classes):
        super().__init__()
        n = (image // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.blocks(x)
        return self.head(self.norm(x)[:, 0])


def forward_flops(image, channels, patch, dim, depth, heads, mlp, classes):
    n = (image // patch) ** 2 + 1
    f = 2 * (n - 1) * channels * patch * patch * dim
    f += depth * (2 * n * dim * 3 * dim + 4 * n * n * dim + 2 * n * dim * dim + 4 * n * dim * mlp)
    return f + 2 * dim * classes


def timed(step, warmup, steps):
    for _ in range(warmup):
        step()
    ms = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        ms.append(1e3 * (time.perf_counter() - t0))
    return ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny28", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--mode", default="both", choices=["train", "infer", "both"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--micro-batch", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    shape = PRESETS[a.preset]
    batch = a.batch or (1 if shape[0] >= 224 else 128)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ViT(*shape)
    images = torch.randn(batch, shape[1], shape[0], shape[0])
    labels = torch.randint(0, shape[7], (batch,))
    fwd = forward_flops(*shape)
    micro = min(batch, a.micro_batch) if a.micro_batch > 0 else batch
    parts = -(-batch // micro)
    # ceil(batch / micro) pieces of even sizes (vitcpp may round its count up, e.g. 26 -> 28).
    pieces = [(batch * i // parts, batch * (i + 1) // parts) for i in range(parts)]
    out = {"preset": a.preset, "batch": batch, "threads": a.threads, "micro_batch": micro,
           "torch": torch.__version__}

    def report(name, ms, flops):
        total = sum(ms) / 1e3
        ips = batch * len(ms) / total
        out[name + "_img_per_s"] = ips
        out[name + "_ms_median"] = statistics.median(ms)
        out[name + "_gflops"] = ips * flops / 1e9

    if a.mode in ("train", "both"):
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "token" not in n and "pos" not in n]
        rest = [p for n, p in model.named_parameters() if not any(p is q for q in decay)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                 {"params": rest, "weight_decay": 0.0}], lr=1e-4)
        model.train()

        def step():
            opt.zero_grad(set_to_none=True)
            for b0, b1 in pieces:
                loss = F.cross_entropy(model(images[b0:b1]), labels[b0:b1], label_smoothing=0.1)
                (loss * ((b1 - b0) / batch) if parts > 1 else loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        report("train", timed(step, a.warmup, a.steps), 3 * fwd)
    if a.mode in ("infer", "both"):
        model.eval()

        def infer():
            with torch.inference_mode():
                for b0, b1 in pieces:
                    model(images[b0:b1])

        report("infer", timed(infer, a.warmup, a.steps), fwd)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    sys.exit(main())
