// Which instruction set the CPU kernels run on. One binary carries every variant the build made
// (on x86-64: AVX-512, AVX2 + FMA, and a portable scalar one) and picks at run time: the best the
// CPU and the operating system support, or the one the environment variable VIT_ISA names.
// Results agree across variants within floating-point tolerance, not bit for bit; on one variant
// they do not depend on the thread count.
#pragma once

#include <string>
#include <vector>

namespace vit {

enum class Isa { kScalar, kAvx2, kAvx512 };

// "scalar", "avx2", "avx512".
const char* isa_name(Isa isa);

// The variants this binary carries that this CPU and OS can run, best last (scalar is always one).
std::vector<Isa> supported_isas();

// The variant the kernels use. Decided on first use: VIT_ISA when set (vit::Error if it names an
// unknown variant or one this CPU lacks), else the best of supported_isas().
Isa active_isa();

// Makes the kernels use `isa` from now on (vit::Error if this CPU or build lacks it). Not to be
// called while kernels run on other threads.
void set_isa(Isa isa);

// Whether this CPU (and OS) runs AVX512-BF16 (VDPBF16PS: Intel Cooper Lake and Sapphire Rapids
// on, AMD Zen 4 on), and whether bf16 products can run now: that, with the AVX-512 kernels active.
bool cpu_has_bf16();
bool bf16_active();

// Whether this CPU runs AMX-BF16 (TDPBF16PS on tiles of 16 rows: Intel Sapphire Rapids on) and
// Linux lets this process use the tile registers (asked once, for the process). Where it does,
// the bf16 products run on AMX (amx_active: bf16_active() too, and not turned off by VIT_AMX=0 or
// set_amx(false)); elsewhere on VDPBF16PS. Both take the same bf16 inputs and sum in fp32, within
// the same error bound, not always to the same bits. set_amx: vit::Error turning on what the CPU
// lacks; not to be called while kernels run on other threads.
bool cpu_has_amx();
bool amx_active();
void set_amx(bool on);

// "scalar, avx2, avx512" for those three: names joined by commas.
std::string isa_list(const std::vector<Isa>& isas);

// Parses "scalar", "avx2" or "avx512"; vit::Error naming the choices otherwise.
Isa parse_isa(const std::string& name);

}  // namespace vit
