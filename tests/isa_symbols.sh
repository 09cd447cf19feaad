#!/usr/bin/env bash
# Checks that one instruction-set variant of the CPU kernels defines no global symbol outside its
# own namespace, vit::ops::isa_<name>: an inline function or template the variant instantiated
# (std::vector's, say) could otherwise be the copy the linker keeps for the whole program, compiled
# for instructions that the CPU running the baseline code may lack.
#   isa_symbols.sh NAME OBJECT...     (NM: the nm to use, for a cross build the target's)
set -euo pipefail
isa=$1
shift
[ $# -ge 1 ] || { echo "no object files given"; exit 1; }
# Every object's symbols (nm failing on one fails the check), then the global definitions (nm's
# upper-case types), less the personality routine's pointer (data).
symbols=$("${NM:-nm}" -C --defined-only "$@")
leaks=$(grep -E '^[0-9a-f]+ [A-Z] ' <<<"$symbols" | grep -v "vit::ops::isa_${isa}::" |
        grep -v 'DW\.ref\.__gxx_personality_v0' | sort -u || true)
if [ -n "$leaks" ]; then
  echo "the $isa kernels define symbols outside vit::ops::isa_$isa (move what defines them to a"
  echo "file compiled once, such as src/ops/shared.cpp):"
  echo "$leaks"
  exit 1
fi
echo "the $isa kernels ($# object files) define only vit::ops::isa_$isa symbols"
