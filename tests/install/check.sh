#!/usr/bin/env bash
# `make install` as a user runs it, into a scratch prefix: installs the build in BUILD_DIR, then
# configures, builds and runs tests/install (find_package(vit), vit::vit) against it, and runs the
# installed tool.
#   check.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -x "$work/prefix/bin/vit" || { echo "no vit in PREFIX/bin"; exit 1; }
"$work/prefix/bin/vit" --version
cmake -S "$src/tests/install" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/consumer" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/consumer/consumer"
