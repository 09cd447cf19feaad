#!/usr/bin/python3
"""The PyTorch peer of `vit bench`: the same ViT shapes in idiomatic PyTorch, timed the same way.

    /usr/bin/python3 bench/pytorch_peer.py --preset tiny28 --batch 128 --threads 2 [--mode both]
                                           [--steps 10] [--warmup 2] [--micro-batch M] [--json]
                                           [--export-onnx FILE]

The model is tests/reference/timm_vit.py's, the one the test fixtures come from, in float32: timm
layout (Conv2d patch embedding, class token, learned positions, pre-norm blocks with a fused qkv
Linear, batched attention (matmul + softmax), nn.LayerNorm, exact GELU, final LayerNorm, head).
A training step is forward, cross-entropy with label smoothing 0.1, backward,
clip_grad_norm_(1.0) and AdamW (weight decay on matrices); inference runs the model in
torch.inference_mode(). FLOPs are counted as vitcpp counts them (Config::forward_flops): 2*m*n*k
over every matmul including QK^T and AV; training counts 3x the forward.

With --micro-batch M a training step runs forward and backward M images at a time, summing the
gradients (gradient accumulation, each piece's loss weighted by its share of the batch), and
inference runs M images at a time: what vitcpp does (`vit bench` reports its M), offered to
PyTorch too (bench/compare.py keeps PyTorch's faster way).

With --export-onnx FILE it writes that model (eval mode, batch fixed at --batch) as ONNX for the
ONNX Runtime peer (bench/ort_peer.js), prints its input shape as JSON and exits: the three sides
run the same network.

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
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
from timm_vit import ViT  # noqa: E402

PRESETS = {
    # image, channels, patch, dim, depth, heads, mlp, classes
    "seed": (28, 1, 4, 8, 2, 2, 32, 10),
    "tiny28": (28, 1, 4, 64, 6, 4, 256, 10),
    "vit_tiny_patch16_224": (224, 3, 16, 192, 12, 3, 768, 1000),
    "vit_small_patch16_224": (224, 3, 16, 384, 12, 6, 1536, 1000),
    "vit_base_patch16_224": (224, 3, 16, 768, 12, 12, 3072, 1000),
}


def make_model(image, channels, patch, dim, depth, heads, mlp, classes):
    cfg = {"image_size": image, "channels": channels, "patch_size": patch, "dim": dim,
           "depth": depth, "heads": heads, "mlp_dim": mlp, "num_classes": classes,
           "pos_embed": "learned", "pool": "cls", "qkv_bias": True, "ln_eps": 1e-6}
    model = ViT(cfg, dtype=torch.float32)
    with torch.no_grad():
        model.pos_embed.normal_(0.0, 0.02)
    return model


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
    ap.add_argument("--export-onnx", metavar="FILE",
                    help="write the model as ONNX (batch fixed at --batch) for bench/ort_peer.js and exit")
    a = ap.parse_args()
    shape = PRESETS[a.preset]
    batch = a.batch or (1 if shape[0] >= 224 else 128)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = make_model(*shape)
    images = torch.randn(batch, shape[1], shape[0], shape[0])
    labels = torch.randint(0, shape[7], (batch,))
    if a.export_onnx:
        # opset 14: what torch 1.13 exports these ops at; the graph is the eval-mode forward.
        model.eval()
        torch.onnx.export(model, images, a.export_onnx, opset_version=14, input_names=["images"],
                          output_names=["logits"])
        print(json.dumps({"onnx": a.export_onnx, "input_shape": list(images.shape)}))
        return 0
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
