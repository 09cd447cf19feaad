#!/usr/bin/env bash
# Distributed training's speed on this machine: 2 MPI ranks x 1 thread (`mpirun -np 2 vit train`)
# against one process with 2 threads, alternated ROUNDS times (default 3), on tiny28 / mnist (one
# epoch) and ViT-Ti/16 on a folder of 224-pixel photos (python3-skimage's: 3 classes of 64, so
# that every batch of 32 is whole, or 192 synthetic ones; 2 epochs).
# Prints each run's img/s and wait_share (metrics.jsonl's last line) and the mean ratio.
# NET_RATE (e.g. 1gbit; needs root and tc) limits the loopback interface, which the ranks' TCP
# uses, to that rate for the runs (a slower network than loopback's 34 Gb/s), and lifts it after.
#   [NET_RATE=1gbit] scripts/compare-mpi.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
vit=build/vit
work=$(mktemp -d /tmp/vitcpp-compare-mpi.XXXXXX)
trap 'rm -rf "$work"; if [ -n "${NET_RATE:-}" ]; then tc qdisc del dev lo root 2> /dev/null || true; fi' EXIT
if [ -n "${NET_RATE:-}" ]; then
  tc qdisc add dev lo root tbf rate "$NET_RATE" burst 1mb latency 100ms
  echo "loopback limited to $NET_RATE"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 VIT_CACHE="$work/cache"
mpi=(mpirun --oversubscribe --bind-to none --mca btl tcp,self -np 2)

# Three classes of photographs, each image copied under several names (every copy is decoded); where
# python3-skimage is missing, 192 + 64 synthetic ones in 4 classes (scripts/make-photos.py: Debian's
# python3-pil).
photos=/usr/lib/python3/dist-packages/skimage/data
if [ -d "$photos" ]; then
  for split in train:64 val:16; do
    name=${split%%:*} count=${split##*:}
    for cls in a:astronaut.png b:chelsea.png c:coffee.png; do
      dir="$work/photos/$name/${cls%%:*}"
      mkdir -p "$dir"
      for i in $(seq "$count"); do cp "$photos/${cls##*:}" "$dir/$i.png"; done
    done
  done
else
  /usr/bin/python3 scripts/make-photos.py "$work/photos" --train 192 --val 64 > /dev/null
fi

last() { tail -1 "$1/metrics.jsonl" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["img_per_s"], m["wait_share"])'; }
run() {  # label, model args...
  local label=$1; shift
  local ratios=()
  for r in $(seq "$rounds"); do
    rm -rf "$work/one" "$work/two"
    "$vit" train "$@" --threads 2 --out "$work/one" > /dev/null
    "${mpi[@]}" "$vit" train "$@" --threads 1 --out "$work/two" > /dev/null
    read -r one _ <<< "$(last "$work/one")"
    read -r two wait <<< "$(last "$work/two")"
    ratio=$(python3 -c "print(f'{$two / $one:.3f}')")
    ratios+=("$ratio")
    echo "$label round $r: 1 process x 2 threads $one img/s, 2 ranks x 1 thread $two img/s" \
         "(wait_share $wait): ratio $ratio"
  done
  python3 -c "import sys; r=[float(x) for x in sys.argv[1:]]; print('$label mean ratio', round(sum(r)/len(r), 3))" "${ratios[@]}"
}
run tiny28 --preset tiny28 --data mnist --epochs 1
run vit_tiny --preset vit_tiny_patch16_224 --data "folder:$work/photos" --epochs 2 --batch 32
