#!/usr/bin/env bash
# Installs (with apt-get) exactly the Debian packages that building and testing vitcpp need, and
# only those not installed yet: running it twice does nothing the second time.
#   scripts/setup-deps.sh        build and test (make build, make test, make test-sanitize)
#   scripts/setup-deps.sh fuzz   also clang and its libFuzzer / OpenMP runtimes (make fuzz)
set -euo pipefail

packages=(g++ cmake ninja-build make libopenblas-dev libopenblas-openmp-dev
          nlohmann-json3-dev
          zlib1g-dev libstb-dev libcli11-dev libgtest-dev libbenchmark-dev)
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang libclang-rt-14-dev libomp-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all build and test dependencies are installed"
  exit 0
fi

echo "setup-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
