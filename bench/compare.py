#!/usr/bin/python3
"""vitcpp against PyTorch and ONNX Runtime on the same machine, in the same run: one Markdown table.

    /usr/bin/python3 bench/compare.py [--threads 2] [--rounds 3] [--vit build/vit] [--isa avx2]
                                      [--only SUBSTRING] [--no-ort]

Where the CPU runs bf16 (`vit info`), two more rows time vitcpp's --dtype bf16 inference of ViT-B
against the peers in fp32, its share counted against the peak of the bf16 kernel that ran (AMX-BF16 where
the CPU has it, else VDPBF16PS).

For each configuration it alternates `vit bench --json`, bench/pytorch_peer.py --json and, for
inference, bench/ort_peer.js (ONNX Runtime's CPU provider running the PyTorch peer's model, exported
to ONNX by pytorch_peer.py --export-onnx), rounds times, and keeps each side's best round (the
same rule for every side). Where vitcpp runs the batch in micro-batches, each round also runs
PyTorch with the same micro-batches (--micro-batch), and PyTorch's best round of either way is
kept. Every side gets the same thread count.

The machine's reference is its fp32 FMA peak for the kernel path vitcpp ran, measured by our own
register-only loop (build/bench/vit_fma_peak); OpenBLAS's square sgemm is printed beside it.

--isa forces vitcpp's kernels (VIT_ISA). With --isa avx2 every process of the run (vitcpp,
PyTorch, the sgemm reference) also gets OPENBLAS_CORETYPE=Haswell, so OpenBLAS runs its AVX2
kernels on both sides, as on a CPU without AVX-512. ONNX Runtime picks its kernels from cpuid and
offers no way to force them: on a CPU with AVX-512 it runs its AVX-512 kernels whatever --isa says.

ONNX Runtime comes from npm (onnxruntime-node, the version pinned below), installed on first use
into build/bench/ort without its install script (which would only fetch GPU binaries); without
npm or the registry the table shows "-" in its columns.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

CONFIGS = [
    # (preset, mode, batch, timed steps, vitcpp's inference dtype)
    ("tiny28", "train", 128, 30, "fp32"),
    ("tiny28", "infer", 256, 20, "fp32"),
    ("vit_tiny_patch16_224", "train", 16, 6, "fp32"),
    ("vit_tiny_patch16_224", "infer", 1, 40, "fp32"),
    ("vit_small_patch16_224", "infer", 1, 20, "fp32"),
    ("vit_small_patch16_224", "infer", 16, 4, "fp32"),
    ("vit_base_patch16_224", "infer", 1, 15, "fp32"),
    ("vit_base_patch16_224", "infer", 16, 3, "fp32"),
    # bf16 (only where `vit info` says the CPU runs it): against the peers' fp32.
    ("vit_base_patch16_224", "infer", 1, 15, "bf16"),
    ("vit_base_patch16_224", "infer", 16, 3, "bf16"),
]

ORT_VERSION = "1.30.0"
HERE = os.path.dirname(os.path.abspath(__file__))
ORT_DIR = os.path.join("build", "bench", "ort")
ENV = dict(os.environ)


def run_json(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env or ENV).stdout
    return json.loads(out.strip().splitlines()[-1])


def ensure_ort():
    """The onnxruntime-node package under ORT_DIR (installed if missing); None when unavailable."""
    modules = os.path.join(ORT_DIR, "node_modules")
    if not os.path.isdir(os.path.join(modules, "onnxruntime-node")):
        if not shutil.which("node") or not shutil.which("npm"):
            print("compare: node/npm not found: no ONNX Runtime column", file=sys.stderr)
            return None
        os.makedirs(ORT_DIR, exist_ok=True)
        r = subprocess.run(["npm", "install", "--prefix", ORT_DIR, "--no-save", "--no-package-lock",
                            "--onnxruntime-node-install=skip", f"onnxruntime-node@{ORT_VERSION}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"compare: npm could not install onnxruntime-node: {r.stderr.strip()[-400:]}\n"
                  "         no ONNX Runtime column", file=sys.stderr)
            return None
    env = dict(ENV)
    env["NODE_PATH"] = os.path.abspath(modules)
    return env


def cell(result, mode, batch):
    """A side's figure: latency at batch 1, throughput otherwise."""
    if batch == 1:
        return f"{result[mode + '_ms_median']:.2f} ms"
    return f"{result[mode + '_img_per_s']:.1f} img/s"


def ratio(o, t, mode, batch):
    """vitcpp against a peer: time ratio at batch 1 (lower is better), throughput ratio otherwise."""
    if batch == 1:
        return f"{o[mode + '_ms_median'] / t[mode + '_ms_median']:.2f}x time"
    return f"{o[mode + '_img_per_s'] / t[mode + '_img_per_s']:.2f}x"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vit", default="build/vit")
    ap.add_argument("--bench-dir", default="build/bench", help="where vit_fma_peak and vit_sgemm_peak are")
    ap.add_argument("--isa", choices=["avx512", "avx2", "scalar"],
                    help="vitcpp's kernels (default: the best this CPU runs)")
    ap.add_argument("--only", default="", help="run only the configurations whose 'preset mode batch "
                    "dtype' contains this text, e.g. 'infer 1 '")
    ap.add_argument("--no-ort", action="store_true", help="leave ONNX Runtime out")
    a = ap.parse_args()
    if a.isa:
        ENV["VIT_ISA"] = a.isa
        if a.isa == "avx2":
            ENV["OPENBLAS_CORETYPE"] = "Haswell"
    info = run_json([a.vit, "info", "--preset", "seed", "--json"])
    bf16, amx = info.get("bf16", False), info.get("amx", False)
    configs = [c for c in CONFIGS
               if a.only in f"{c[0]} {c[1]} {c[2]} {c[4]}" and (bf16 or c[4] == "fp32")]
    if not configs:
        sys.exit(f"compare: no configuration matches --only '{a.only}'")
    ort_env = None if a.no_ort else ensure_ort()
    sgemm = run_json([os.path.join(a.bench_dir, "vit_sgemm_peak"), str(a.threads)])["sgemm_gflops"]
    fma = run_json([os.path.join(a.bench_dir, "vit_fma_peak"), str(a.threads)])["isas"]
    rows = []
    shapes = {}  # (preset, batch) -> the exported model's input shape: each exported once a run
    for preset, mode, batch, steps, dtype in configs:
        common = ["--preset", preset, "--mode", mode, "--batch", str(batch), "--threads",
                  str(a.threads), "--steps", str(steps), "--warmup", "2"]
        peer = [sys.executable, os.path.join(HERE, "pytorch_peer.py")] + common + ["--json"]
        ort_cmd = None
        if ort_env and mode == "infer":
            model = os.path.join(ORT_DIR, f"{preset}_b{batch}.onnx")
            if (preset, batch) not in shapes:  # the bf16 rows reuse the fp32 rows' export
                shapes[preset, batch] = run_json(
                    [sys.executable, os.path.join(HERE, "pytorch_peer.py"), "--preset", preset,
                     "--batch", str(batch), "--export-onnx", model])["input_shape"]
            shape = shapes[preset, batch]
            ort_cmd = ["node", os.path.join(HERE, "ort_peer.js"), "--model", model, "--shape",
                       ",".join(map(str, shape)), "--threads", str(a.threads), "--steps", str(steps),
                       "--warmup", "2", "--json"]
        ours, theirs, orts = [], [], []
        for _ in range(a.rounds):
            ours.append(run_json([a.vit, "bench"] + common + ["--dtype", dtype, "--json"]))
            theirs.append(run_json(peer))
            micro = ours[-1].get(mode + "_micro_batch", batch)
            if micro < batch:
                theirs.append(run_json(peer + ["--micro-batch", str(micro)]))
            if ort_cmd:
                orts.append(run_json(ort_cmd, ort_env))
        key = mode + "_img_per_s"
        best = lambda rs: max(rs, key=lambda r: r[key]) if rs else None  # noqa: E731
        rows.append((preset, mode, batch, dtype, best(ours), best(theirs), best(orts)))
        print(f"measured {preset} {mode} batch {batch} {dtype}", file=sys.stderr)

    isa = rows[0][4].get("isa", "?")
    peak = fma.get(isa, {}).get("peak_gflops")
    core = ENV.get("OPENBLAS_CORETYPE", "OpenBLAS's choice")
    ort_version = next((r[6]["ort"] for r in rows if r[6]), None)
    print(f"vitcpp kernels: {isa}; OPENBLAS_CORETYPE: {core}; {a.threads} threads; "
          f"ONNX Runtime: {ort_version or 'not run'}")
    print(f"FMA peak ({isa}, vit_fma_peak): {peak or 0:.1f} GFLOP/s; "
          f"OpenBLAS sgemm (2048^3): {sgemm:.1f} GFLOP/s\n")
    print("| config | vitcpp | PyTorch | vitcpp / PyTorch | ONNX Runtime | vitcpp / ORT "
          "| vitcpp GFLOP/s (% of FMA peak) | peak RSS vitcpp / PyTorch / ORT | micro-batch vitcpp / PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset, mode, batch, dtype, o, t, r in rows:
        g = o[mode + "_gflops"]
        # bf16 rows: against the peak of the bf16 kernel that ran, AMX's TDPBF16PS where the CPU
        # has it, else VDPBF16PS (twice the FMA's flops per instruction).
        bf16_peak = "amx_bf16" if amx else isa + "_bf16"
        p = fma.get(bf16_peak, {}).get("peak_gflops") if dtype == "bf16" else peak
        share = f" ({100 * g / p:.0f}%{' of ' + bf16_peak if dtype == 'bf16' else ''})" if p else ""
        ort_rss = f"{r['peak_rss_mb']:.0f}" if r else "-"
        name = f"`{preset}` {mode}{' (bf16)' if dtype != 'fp32' else ''}, batch {batch}"
        print(f"| {name} | {cell(o, mode, batch)} | {cell(t, mode, batch)} | "
              f"{ratio(o, t, mode, batch)} | {cell(r, mode, batch) if r else '-'} | "
              f"{ratio(o, r, mode, batch) if r else '-'} | {g:.1f}{share} | "
              f"{o['peak_rss_mb']:.0f} / {t['peak_rss_mb']:.0f} / {ort_rss} MB | "
              f"{o.get(mode + '_micro_batch', batch)} / {t.get('micro_batch', batch)} |")


if __name__ == "__main__":
    main()
