# CMake toolchain file: cross-compiles vitcpp for 64-bit ARM Linux (aarch64) on a Debian x86-64
# host, with Debian's cross compiler (g++-aarch64-linux-gnu) and the arm64 builds of the libraries
# from Debian's multiarch packages (dpkg --add-architecture arm64; libopenblas-openmp-dev:arm64 and
# the others that `make test-arm64` installs, under /usr/lib/aarch64-linux-gnu). Test programs
# run under qemu-user (qemu-aarch64), for gtest's test discovery at build time and for ctest.
#   cmake -S . -B build-arm64 -G Ninja --toolchain cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(VIT_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${VIT_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${VIT_CROSS_TRIPLE}-g++)
# CMake takes the target's binutils (ar, ranlib, nm) from the compiler's prefix.

# The libraries are found the multiarch way: no sysroot, the host's prefixes, and the library
# architecture (aarch64-linux-gnu) that CMake reads from the compiler picks their arm64 directories.
# Programs run the same way: qemu-aarch64 without -L takes the arm64 dynamic loader, C and C++
# runtimes from the multiarch packages (libc6:arm64, libstdc++6:arm64, libgomp1:arm64). Not -L
# /usr/aarch64-linux-gnu: that mixes the cross toolchain's loader with the multiarch libc found
# through /etc/ld.so.cache (two glibc builds), and then the first thread started hangs.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
