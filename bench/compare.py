#!/usr/bin/python3
"""vitcpp against PyTorch on the same machine, in the same run: prints a Markdown table.

    /usr/bin/python3 bench/compare.py [--threads 2] [--rounds 3] [--vit build/vit]
                                      [--peak build/bench/vit_sgemm_peak] [--isa avx2]

For each configuration it alternates `vit bench --json` and bench/pytorch_peer.py --json, rounds
times, and keeps each side's best round (the same rule for both). Where vitcpp runs the batch in
micro-batches, each round also runs PyTorch with the same micro-batches (--micro-batch), and
PyTorch's best round of either way is kept. It also measures OpenBLAS's
square sgemm GFLOP/s with the same thread count as the machine's practical fp32 peak.

--isa forces vitcpp's kernels (VIT_ISA). With --isa avx2 every process of the run (vitcpp,
PyTorch, the sgemm peak) also gets OPENBLAS_CORETYPE=Haswell, so OpenBLAS runs its AVX2 kernels
on both sides, as on a CPU without AVX-512.
"""
import argparse
import json
import os
import subprocess
import sys

CONFIGS = [
    # (preset, mode, batch, timed steps)
    ("tiny28", "train", 128, 30),
    ("tiny28", "infer", 256, 20),
    ("vit_tiny_patch16_224", "train", 16, 6),
    ("vit_tiny_patch16_224", "infer", 1, 40),
    ("vit_base_patch16_224", "infer", 1, 15),
]

HERE = os.path.dirname(os.path.abspath(__file__))


ENV = dict(os.environ)


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vit", default="build/vit")
    ap.add_argument("--peak", default="build/bench/vit_sgemm_peak")
    ap.add_argument("--isa", choices=["avx512", "avx2", "scalar"],
                    help="vitcpp's kernels (default: the best this CPU runs)")
    a = ap.parse_args()
    if a.isa:
        ENV["VIT_ISA"] = a.isa
        if a.isa == "avx2":
            ENV["OPENBLAS_CORETYPE"] = "Haswell"
    peak = run_json([a.peak, str(a.threads)])["sgemm_gflops"]
    rows = []
    for preset, mode, batch, steps in CONFIGS:
        common = ["--preset", preset, "--mode", mode, "--batch", str(batch), "--threads",
                  str(a.threads), "--steps", str(steps), "--warmup", "2", "--json"]
        ours, theirs = [], []
        peer = [sys.executable, os.path.join(HERE, "pytorch_peer.py")] + common
        for _ in range(a.rounds):
            ours.append(run_json([a.vit, "bench"] + common))
            theirs.append(run_json(peer))
            micro = ours[-1].get(mode + "_micro_batch", batch)
            if micro < batch:
                theirs.append(run_json(peer + ["--micro-batch", str(micro)]))
        key = mode + "_img_per_s"
        o = max(ours, key=lambda r: r[key])
        t = max(theirs, key=lambda r: r[key])
        rows.append((preset, mode, batch, o, t))
        print(f"measured {preset} {mode} batch {batch}", file=sys.stderr)

    isa = rows[0][3].get("isa", "?")
    core = ENV.get("OPENBLAS_CORETYPE", "OpenBLAS's choice")
    print(f"vitcpp kernels: {isa}; OPENBLAS_CORETYPE: {core}")
    print(f"OpenBLAS sgemm (2048^3, {a.threads} threads): {peak:.1f} GFLOP/s\n")
    print("| config | vitcpp | PyTorch | ratio | vitcpp GFLOP/s (% of sgemm) | peak RSS vitcpp / PyTorch "
          "| micro-batch vitcpp / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for preset, mode, batch, o, t in rows:
        key = mode + "_img_per_s"
        if batch == 1:
            ours_s = f"{o[mode + '_ms_median']:.2f} ms"
            theirs_s = f"{t[mode + '_ms_median']:.2f} ms"
            ratio = f"{o[mode + '_ms_median'] / t[mode + '_ms_median']:.2f}x time"
        else:
            ours_s = f"{o[key]:.0f} img/s"
            theirs_s = f"{t[key]:.0f} img/s"
            ratio = f"{o[key] / t[key]:.2f}x"
        g = o[mode + "_gflops"]
        print(f"| `{preset}` {mode}, batch {batch} | {ours_s} | {theirs_s} | {ratio} | "
              f"{g:.1f} ({100 * g / peak:.0f}%) | {o['peak_rss_mb']:.0f} / {t['peak_rss_mb']:.0f} MB | "
              f"{o.get(mode + '_micro_batch', batch)} / {t.get('micro_batch', batch)} |")


if __name__ == "__main__":
    main()
