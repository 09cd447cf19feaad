#!/usr/bin/env python3
"""The scaling model of docs/DISTRIBUTED.md: predicted step time, speed-up and efficiency of
`mpirun -np N vit train` for tiny28, ViT-Ti/16 and ViT-B/16 at 10, 25 and 100 Gb/s and 2-64 ranks,
from the costs measured on the development machine (each rank: one such 2-core machine, 2 threads).

    python3 scripts/scaling-model.py            # the tables docs/DISTRIBUTED.md shows (markdown)

The model (docs/DISTRIBUTED.md explains each term):
    T(N) = T_compute + T_fixed + T_exposed
    T_compute = images per rank x c                      (forward + backward, per image)
    T_fixed   = P x a  (AdamW and the gradient norm over every parameter, on every rank)
              + M x P / N x s  (adding this rank's slice of the M micro-batch gradients, in order)
    T_exposed = what the network adds to the step, after the overlap:
        S = (N - 1) / N x G / bw + (N - 1) x alpha   one micro-batch's gradient sent in slices to
                                                     the N - 1 owners (G = 4 P bytes, fp32)
        the first m - 1 of a rank's m micro-batches are sent while it computes the next ones
        (exposed only where sending is slower than computing). The last one travels in k buckets
        (whole blocks) as its backward (2/3 of its compute) finishes them, each bucket's slices
        sent, then summed and gathered ((N - 1) / N x G / k / bw + (N - 1) x alpha each way),
        one bucket after another on the network: what is left of that queue when the backward
        ends is exposed (at least the last bucket's send and gather).
No imbalance between ranks is modelled (every rank computes the same share at the same speed).
"""

# ---- Measured here (2026-12-04, AMD EPYC Zen 5 VM, 2 cores, AVX-512 kernels; the commands). ----
# Training step, 2 threads, fp32 (`vit bench --preset P --mode train --batch B --threads 2`):
# tiny28 batch 32: 17.70 ms; vit_tiny_patch16_224 batch 16: 481.65 ms; vit_base_patch16_224
# batch 8: 3494.24 ms. Those steps include one AdamW pass over the parameters, subtracted below.
# AdamW (`build/bench/vit_bench_ops --benchmark_filter=AdamW`): 1.23 ns a parameter at 305k
# parameters (in cache), 1.47 ns at 5.7M (from memory).
# The in-order sum dst += src (`--benchmark_filter=AddInto`): 0.065 ns a float at 305k, 0.086 at 5.7M.
# MPI over TCP on this machine (`mpirun -np 2 --mca btl tcp,self build/bench/vit_mpi_pingpong`):
# 10 us one way for 8 bytes (alpha, the software floor: a real network adds its own latency),
# 3.85-3.94 ms for 16 MiB (4.3 GB/s = 34 Gb/s: loopback TCP's ceiling here, so 100 Gb/s needs a
# transport that copies less than TCP, e.g. RDMA).
MODELS = {
    # name: (parameters, step ms at `batch` images, batch, AdamW ns/param, sum ns/float,
    #        images per micro-batch in one process: the automatic choice, blocks)
    "tiny28": (305_034, 17.70, 32, 1.23, 0.065, 8, 6),
    "ViT-Ti/16": (5_717_416, 481.65, 16, 1.47, 0.086, None, 12),  # None: the whole batch
    "ViT-B/16": (86_567_656, 3494.24, 8, 1.47, 0.086, None, 12),
}
BACKWARD_SHARE = 2 / 3  # of a micro-batch's compute: the backward's two GEMMs to the forward's one
ALPHA_S = 10e-6
BANDWIDTHS_GBIT = (10, 25, 100)
RANKS = (1, 2, 4, 8, 16, 32, 64)


def per_image_seconds(name):
    params, step_ms, batch, adamw_ns, _, _, _ = MODELS[name]
    return (step_ms * 1e-3 - params * adamw_ns * 1e-9) / batch


def step_time(name, ranks, batch, gbit, grad_bytes_per_param=4.0, zero1=False):
    """Seconds per step of `batch` images on `ranks` ranks, and the exposed network share."""
    params, _, _, adamw_ns, sum_ns, micro, blocks = MODELS[name]
    c = per_image_seconds(name)
    images = batch / ranks
    # Micro-batches: one process's (micro images each), at least one per rank; a model that one
    # process trains in one piece gets batch / ranks images each.
    per_micro = micro if micro else batch
    total_micro = max(ranks, -(-batch // per_micro))
    m = total_micro / ranks
    compute = images * c
    optimizer = params * adamw_ns * 1e-9 / (ranks if zero1 else 1)
    fixed = optimizer + (total_micro * params / ranks * sum_ns * 1e-9 if ranks > 1 else 0.0)
    if ranks == 1:
        return compute + fixed, 0.0
    bw = gbit * 1e9 / 8
    grad = params * grad_bytes_per_param
    send = (ranks - 1) / ranks * grad / bw + (ranks - 1) * ALPHA_S
    per_micro_compute = compute / m
    overlapped = max(0.0, (m - 1) * (send - per_micro_compute))
    # The last micro-batch's buckets: whole blocks of at least 65536 N floats, as
    # src/train/step.cpp cuts them (about equal here); bucket j is finished at (j + 1) / k of its
    # backward, then sent and gathered, one bucket at a time on the network.
    buckets = max(1, min(blocks, params // (65536 * ranks)))
    backward = BACKWARD_SHARE * per_micro_compute
    # (its slices of the gradient out, the summed slices back: fp32 sums). With ZeRO-1 the
    # buckets carry the gradient's slices alone: the updated weights are gathered after the
    # optimizer, which needs the whole gradient's norm, so that gather is exposed.
    send_bucket = (ranks - 1) / ranks * grad / buckets / bw + (ranks - 1) * ALPHA_S
    gather_bucket = (ranks - 1) / ranks * params * 4 / buckets / bw + (ranks - 1) * ALPHA_S
    gather = (ranks - 1) / ranks * params * 4 / bw + (ranks - 1) * ALPHA_S
    per_bucket = send_bucket + (0.0 if zero1 else gather_bucket)
    network = 0.0
    for j in range(buckets):
        network = max(network, backward * (j + 1) / buckets) + per_bucket
    exposed = overlapped + network - backward + (gather if zero1 else 0.0)
    total = compute + fixed + exposed
    return total, exposed / total


def table(name, batch, per_rank_batch=None, **kw):
    lines = []
    head = "| ranks | " + " | ".join(f"{g} Gb/s: step, speed-up, efficiency, network share"
                                     for g in BANDWIDTHS_GBIT) + " |"
    lines.append(head)
    lines.append("|---|" + "---|" * len(BANDWIDTHS_GBIT))
    for n in RANKS:
        b = per_rank_batch * n if per_rank_batch else batch
        if b % n or b < n:
            continue
        cells = []
        for g in BANDWIDTHS_GBIT:
            t1, _ = step_time(name, 1, b, g, **kw)
            tn, share = step_time(name, n, b, g, **kw)
            speedup = t1 / tn
            cells.append(f"{tn * 1e3:.1f} ms, {speedup:.1f}x, {speedup / n:.0%}, {share:.0%}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stops(name, batch, gbit, **kw):
    """The most ranks (a power of two dividing batch) at which efficiency stays >= 50%."""
    best, n = 1, 2
    t1, _ = step_time(name, 1, batch, gbit, **kw)
    while n <= batch:
        tn, _ = step_time(name, n, batch, gbit, **kw)
        if t1 / tn / n < 0.5:
            break
        best, n = n, n * 2
    return best


def main():
    print("Per image (forward + backward, 2 threads): " + ", ".join(
        f"{n} {per_image_seconds(n) * 1e3:.3g} ms" for n in MODELS))
    for name in MODELS:
        print(f"\n### {name}, global batch 512 (strong scaling: the same batch on more ranks)\n")
        print(table(name, 512))
    for name in MODELS:
        print(f"\n### {name}, 32 images per rank (the global batch grows with the ranks)\n")
        print(table(name, None, per_rank_batch=32))
    print("\n### ViT-B/16, global batch 512, bf16 gradients and ZeRO-1 (each rank updates "
          "its slice)\n")
    print(table("ViT-B/16", 512, grad_bytes_per_param=2.0, zero1=True))
    print("\n### Where efficiency falls below 50% (global batch 512; ranks up to 512)\n")
    print("| model | " + " | ".join(f"{g} Gb/s" for g in BANDWIDTHS_GBIT) + " |")
    print("|---|" + "---|" * len(BANDWIDTHS_GBIT))
    for name in MODELS:
        cells = []
        for g in BANDWIDTHS_GBIT:
            n = stops(name, 512, g)
            cells.append("never, up to 512 (1 image a rank)" if n >= 512 else f"beyond {n} ranks")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n### The model against the 2-rank runs measured here (loopback TCP, 34 Gb/s)\n")
    for name, batch in (("tiny28", 32), ("ViT-Ti/16", 32)):
        _, share = step_time(name, 2, batch, 34.4)
        print(f"- {name}, batch {batch}, 2 ranks: predicted network share {share:.1%}")


if __name__ == "__main__":
    main()
