#!/usr/bin/env bash
# Installs (with apt-get) exactly the Debian packages that building and testing vitcpp need, and
# only those not installed yet: running it twice does nothing the second time.
#   scripts/setup-deps.sh        build and test (make build, make test, make test-sanitize)
#   scripts/setup-deps.sh fuzz   also clang and its libFuzzer / OpenMP runtimes (make fuzz)
#   scripts/setup-deps.sh report also Chromium, which renders vit report's page (make test-report)
#   scripts/setup-deps.sh arm64  the aarch64 cross compiler, qemu-user and the arm64 builds of the
#                                libraries (Debian multiarch), for make test-arm64
set -euo pipefail

packages=(g++ cmake ninja-build make libopenblas-dev libopenblas-openmp-dev
          nlohmann-json3-dev
          zlib1g-dev libjpeg62-turbo-dev libpng-dev libwebp-dev libstb-dev libcli11-dev
          libcairo2-dev librsvg2-dev fonts-dejavu-core
          libopenmpi-dev openmpi-bin
          libgtest-dev libbenchmark-dev locales)
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang libclang-rt-14-dev libomp-dev)
fi
if [ "${1:-}" = "report" ]; then
  packages+=(chromium)
fi
arm64_arch=""
if [ "${1:-}" = "arm64" ]; then
  packages=(cmake ninja-build make g++-aarch64-linux-gnu qemu-user nlohmann-json3-dev libcli11-dev
            libopenblas-openmp-dev:arm64 zlib1g-dev:arm64 libjpeg62-turbo-dev:arm64
            libpng-dev:arm64 libwebp-dev:arm64 libstb-dev:arm64 libgtest-dev:arm64
            libc6:arm64 libstdc++6:arm64 libgomp1:arm64)
  dpkg --print-foreign-architectures | grep -qx arm64 || arm64_arch=1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ -z "$arm64_arch" ]; then
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
if [ -n "$arm64_arch" ]; then
  echo "setup-deps: adding the arm64 architecture to dpkg (multiarch)"
  $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
