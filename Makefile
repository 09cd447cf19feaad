# Thin wrapper over CMake: `make test` installs what is missing, builds and runs the tests.
BUILD_DIR ?= build
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc)

.PHONY: all deps build test demo compare clean fixtures format

all: build

deps:
	bash scripts/setup-deps.sh

build:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: deps build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# Installs, builds, prepares the MNIST digits and trains the default model (tiny28) on them; prints
# the test accuracy. Each run gets its own directory under runs/.
demo: deps build
	bash scripts/setup-data.sh mnist
	./$(BUILD_DIR)/vit train --preset tiny28 --data mnist --out runs/demo-$$(date +%Y%m%d-%H%M%S)

# vitcpp against PyTorch (Debian's python3-torch) on this machine, same run; see docs/PERFORMANCE.md.
compare: build
	/usr/bin/python3 bench/compare.py --threads $(JOBS)

# Regenerates tests/fixtures/*.safetensors with PyTorch (Debian's python3-torch); tests never need it.
fixtures:
	python3 tests/reference/make_fixtures.py tests/fixtures

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
