# Thin wrapper over CMake + CTest.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all test test-unit test-gpu asan fuzz demo deps clean
all:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# GPU tests (label gpu) need a GPU: `make test-gpu` runs them.
test: deps all
	cd $(BUILD) && ctest --output-on-failure -LE gpu -j $(JOBS)

test-gpu: all
	cd $(BUILD) && ctest --output-on-failure -L gpu

test-unit: all
	cd $(BUILD) && ctest --output-on-failure -L unit -j $(JOBS)

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRL_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -L unit -j $(JOBS)

fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

deps:
	scripts/install-deps.sh
	@# the tokenizer oracle of the tests (Hugging Face tokenizers' Node binding, pinned)
	@[ -d tests/oracle/node_modules/@anush008 ] || (cd tests/oracle && npm ci --no-audit --no-fund)

# The main job on a fresh machine: dependencies, build, default model, generate.
demo: deps all
	scripts/demo.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz
