# Thin wrapper over CMake: `make test` installs what is missing, builds and runs the tests.
BUILD_DIR ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

FUZZ_SECONDS ?= 60

.PHONY: all deps build install test test-isa test-arm64 demo compare test-sanitize test-report fuzz clean fixtures format

all: build

deps:
	bash scripts/setup-deps.sh

build:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Installs the library (headers, libvit.a, the CMake package for find_package(vit)) and the tool
# under PREFIX (bin/vit, include/vit, lib/cmake/vit).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

test: deps build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# The suite again on each other kernel variant (VIT_ISA) and OpenBLAS kernel family this CPU can
# run, as on other machines: AVX2 with OpenBLAS's AVX2 kernels (OPENBLAS_CORETYPE=Haswell, as on
# AVX2-only CPUs and on machines that set it), AVX-512 with its SkylakeX kernels, and the portable
# scalar path. The fault-injection, corpus, symbol and install tests (labels reliability,
# fuzz-corpus, isa-symbols, install; tests/labels.cmake) run no kernel worth repeating and are
# left out by label.
ISA_CTEST_EXCLUDE_LABELS = reliability|fuzz-corpus|isa-symbols|install
test-isa: build
	@set -e; flags=$$(grep -m1 '^flags' /proc/cpuinfo); \
	exclude='$(ISA_CTEST_EXCLUDE_LABELS)'; \
	run() { echo "== $$*"; env "$$@" ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) \
	  -LE "^($$exclude)$$"; }; \
	case " $$flags " in *" avx2 "*) run VIT_ISA=avx2 OPENBLAS_CORETYPE=Haswell;; esac; \
	case " $$flags " in *" avx512f "*) run VIT_ISA=avx512 OPENBLAS_CORETYPE=SkylakeX;; esac; \
	run VIT_ISA=scalar OPENBLAS_CORETYPE=Haswell

# The portable (scalar) kernels cross-compiled for 64-bit ARM (aarch64, Debian's
# g++-aarch64-linux-gnu and arm64 libraries) and the op, GEMM, model, thread and format tests run
# under qemu-user, in build-arm64/. Not in CI: emulation makes it slow (112 tests, when last run, in about 10
# minutes on 2 cores). Model.MicroBatchesGiveTheBatchGradient is left out: its bound takes a
# backward pass per image and class, over 10 minutes emulated.
ARM64_TESTS ?= ^(Cpu/|Model|Fixtures/ModelFixture|Threads|Safetensors|Config|VMath)
ARM64_EXCLUDE ?= ^Model\.MicroBatchesGiveTheBatchGradient$$
test-arm64:
	bash scripts/setup-deps.sh arm64
	cmake -S . -B build-arm64 -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  --toolchain cmake/aarch64-linux-gnu.cmake -DVIT_BUILD_BENCH=OFF -DVIT_MPI=OFF
	cmake --build build-arm64 -j $(JOBS)
	ctest --test-dir build-arm64 --output-on-failure -j $(JOBS) -R '$(ARM64_TESTS)' \
	  -E '$(ARM64_EXCLUDE)'

# Installs, builds, prepares the MNIST digits and trains the default model (tiny28) on them; prints
# the test accuracy. Each run gets its own directory under runs/.
demo: deps build
	bash scripts/setup-data.sh mnist
	./$(BUILD_DIR)/vit train --preset tiny28 --data mnist --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# The whole test suite built with AddressSanitizer + UndefinedBehaviorSanitizer (GCC), MPI
# included when found. SANITIZE_SKIP: the labels the first pass leaves out (a regex; CI also leaves
# out the tests labelled slow: '^(slow|mpi)'). The second pass runs the mpi tests (mpirun, 2-4
# sanitized ranks) with what OpenMPI needs there: its plugins kept loaded and the slow unwinder, so
# that LeakSanitizer can name OpenMPI's own allocations, kept for the process's life, and leave
# them out (fuzz/lsan.supp); a leak of ours still fails them.
# alloc_dealloc_mismatch=0: GCC 12's std::stable_sort frees its nothrow-new buffer in a way ASan
# misreads as new/free (a known false positive in libstdc++'s headers, not in our code).
SANITIZE_SKIP ?= ^mpi
SANITIZE_ASAN := detect_leaks=1:abort_on_error=1:alloc_dealloc_mismatch=0
SANITIZE_LSAN := suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0
test-sanitize: deps
	cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIT_SANITIZE=ON \
	  -DVIT_BUILD_BENCH=OFF -U VIT_MPI
	cmake --build build-sanitize -j $(JOBS)
	ASAN_OPTIONS=$(SANITIZE_ASAN) LSAN_OPTIONS=$(SANITIZE_LSAN) \
	  ctest --test-dir build-sanitize --output-on-failure -j $(JOBS) -LE '$(SANITIZE_SKIP)'
	OMPI_MCA_mca_base_component_disable_dlclose=1 ASAN_OPTIONS=$(SANITIZE_ASAN):fast_unwind_on_malloc=0 \
	  LSAN_OPTIONS=$(SANITIZE_LSAN) ctest --test-dir build-sanitize --output-on-failure -L '^mpi'


# Each libFuzzer harness (clang, ASan + UBSan) for FUZZ_SECONDS, from the committed seed corpus in
# fuzz/corpus; new inputs go to build-fuzz/corpus-*, crashes to build-fuzz/crash-*.
fuzz:
	bash scripts/setup-deps.sh fuzz
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DVIT_FUZZ=ON -DVIT_BUILD_TESTS=OFF -DVIT_BUILD_BENCH=OFF -DVIT_MPI=OFF
	cmake --build build-fuzz -j $(JOBS)
	for h in idx safetensors image metadata; do \
	  mkdir -p build-fuzz/corpus-$$h && \
	  build-fuzz/fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096 \
	    -artifact_prefix=build-fuzz/crash-$$h- build-fuzz/corpus-$$h fuzz/corpus/$$h || exit 1; \
	done

# vitcpp against PyTorch (Debian's python3-torch) on this machine, same run; see docs/PERFORMANCE.md.
# ISA=avx2 (or scalar, avx512) forces vitcpp's kernels; avx2 also gives both sides OpenBLAS's AVX2
# kernels (OPENBLAS_CORETYPE=Haswell).
ISA ?=
# vit report's page in a real browser: headless Chromium renders it, the screenshot must not be blank.
test-report: build
	bash scripts/setup-deps.sh report
	bash scripts/test-report.sh

compare: build
	/usr/bin/python3 bench/compare.py --threads $(JOBS) $(if $(ISA),--isa $(ISA))

# Regenerates tests/fixtures/*.safetensors with PyTorch (Debian's python3-torch); tests never need it.
fixtures:
	python3 tests/reference/make_fixtures.py tests/fixtures
	python3 tests/reference/make_transform_fixtures.py tests/fixtures
	python3 tests/reference/make_rand_augment_fixtures.py tests/fixtures
	python3 tests/reference/make_timm_fixtures.py tests/fixtures/timm
	python3 tests/reference/make_attention_fixture.py tests/fixtures

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR) build-sanitize build-fuzz
