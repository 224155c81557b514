# litedist: the two commands a new machine needs are `make run` and `make test`.
# Everything else here is what they are made of.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build build-asan run cluster test test-unit test-asan bench bench-storage \
        clean format

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLD_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# One node on 127.0.0.1:1446 with its data in ./data and the embedded SQLite storage.
run: build
	$(BUILD)/bin/litedistd --data ./data --port 1446

# Three nodes on 17001-17003 replicating with each other; Ctrl-C stops all three.
cluster: build
	scripts/cluster.sh

# Every test, then the unit and system tests again under AddressSanitizer + UBSan.
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j 2
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j 2 -L 'unit|storage|system'

bench: build
	bench/run

# Each storage plugin beside its raw engine (SQLite, LMDB) in one run; regenerates the storage
# section of docs/benchmarks.md.
bench-storage: build
	bench/storage/run --build $(BUILD)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
