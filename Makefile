# aifn — the two commands of the Quick start are `make run` and `make test`.
# Everything installs what it needs first (scripts/bootstrap.sh, quick when done).
SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
PORT ?= 8080

.PHONY: all bootstrap build build-asan run test test-unit test-asan test-e2e test-asan-e2e check-includes bench soak fuzz clean model

all: build

bootstrap:
	@bash scripts/bootstrap.sh

$(BUILD)/CMakeCache.txt: | bootstrap
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: bootstrap $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# The default model for `make run`: a tiny random-weight llama GGUF made by
# our own generator. Its text is noise; see docs/MODELS.md for real models.
model: build
	@mkdir -p models
	@[ -f models/tiny.gguf ] || $(BUILD)/aifn-gen-model --out models/tiny.gguf --type q8_0 --seed 1

run: build model
	@bash scripts/run-examples.sh $(BUILD) $(PORT)

build-asan: bootstrap
	@[ -f $(ASAN_BUILD)/CMakeCache.txt ] || cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DAIFN_SANITIZE=ON
	cmake --build $(ASAN_BUILD) --target aifn_unit_tests aifn -j$(JOBS)

test-unit: build
	cd $(BUILD) && ctest -L unit --output-on-failure -j$(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest -L unit --output-on-failure -j$(JOBS)

test-e2e: build
	cd $(BUILD) && ctest -L e2e --output-on-failure

# The end-to-end tests that start, kill, replace and stop instances, run
# against the sanitized server: a use-after-free there shows at once, not by
# luck (the release server can survive one). The test process stays release.
ASAN_E2E ?= Lifecycle.*:Admin.*Deploy*:Invoke.*
test-asan-e2e: build build-asan
	AIFN_TEST_BINARY=$(abspath $(ASAN_BUILD))/aifn ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  AIFN_SOURCE_DIR=$(CURDIR) $(BUILD)/tests/e2e/aifn_e2e_test --gtest_filter='$(ASAN_E2E)' --gtest_brief=1

# Every test: unit tests, end-to-end tests against the real server and real
# Node/Python processes, then the unit tests again under ASan + UBSan and the
# lifetime-heavy end-to-end tests against the sanitized server.
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest -L unit --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory test-asan-e2e

bench: build
	@bash bench/run_all.sh $(BUILD)

# One server under mixed load for SOAK_SECONDS (default 300): stays up, answers
# as documented, does not grow, stops cleanly (bench/soak.py).
soak: build
	python3 bench/soak.py --build $(BUILD) --seconds $${SOAK_SECONDS:-300}

# The default builds are unity builds (AIFN_UNITY): each compiles batches of
# sources as one, so a source missing an #include can still build there.
# This builds every target file by file (about 7 minutes on 2 cores); CI runs it.
check-includes: bootstrap
	@[ -f build-file-by-file/CMakeCache.txt ] || cmake -S . -B build-file-by-file -DCMAKE_BUILD_TYPE=Release -DAIFN_UNITY=OFF
	cmake --build build-file-by-file -j$(JOBS)

fuzz: bootstrap
	@bash scripts/fuzz.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz build-file-by-file
