# litedist: the two commands a new machine needs are `make run` and `make test`.
# Everything else here is what they are made of.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps deps-test build build-asan run cluster test test-unit test-asan test-package \
        bench bench-storage clean format

all: build

deps:
	@scripts/deps.sh

# What only the tests need (pytest, clang, chromium, Node.js and the browser tests' npm packages).
deps-test:
	@scripts/deps.sh --test

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
# Three at a time on two cores: the system tests' shards spend most of their time waiting on
# replication and timers (tests/system/CMakeLists.txt).
TEST_JOBS ?= 3
test: deps-test build build-asan
	cd $(BUILD) && ctest --output-on-failure -j $(TEST_JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(TEST_JOBS) -L 'unit|storage|system'
	$(MAKE) --no-print-directory -j $(JOBS) fuzz-build
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) FUZZ_FLAGS='$(FUZZ_TEST_FLAGS)'

# Builds the Debian packages from $(BUILD), installs them with dpkg, runs the installed
# litedistd and purges them (root; tests/deploy/test_package.py). make test runs it too.
test-package: deps-test build
	cd $(BUILD) && ctest --output-on-failure -L package

# litedist beside its peers (evhttp ceiling, Redis, pouchdb-server, raw SQLite/LMDB), workloads B0-B9
# of issue 7 and B10 (a node joining) of issue 14; bench/deps.sh installs the peers (never make
# test). Options: BENCH_FLAGS='--only B10'.
bench: build
	bench/run $(BENCH_FLAGS)

# Each storage plugin beside its raw engine (SQLite, LMDB) in one run; regenerates the storage
# section of docs/benchmarks.md.
bench-storage: build
	bench/storage/run --build $(BUILD)

# libFuzzer targets, built with clang (ASan + UBSan) into $(FUZZ_BUILD): each runs FUZZ_SECONDS
# from its committed seeds (tests/fuzz/corpus/<name>, read-only) plus what it has found before
# ($(FUZZ_BUILD)/corpus/<name>); an input that crashes lands in $(FUZZ_BUILD)/crash-*.
# `make fuzz` explores with a random seed; `make test` replays a fixed seed for a bounded number of
# runs, so a test run is repeatable and a new finding from exploration becomes a corpus file and a
# regression test instead of a CI run that fails by luck.
FUZZ_BUILD        ?= build-fuzz
FUZZ_SECONDS      ?= 60
FUZZ_FLAGS        ?=
# make test: each of the FUZZ_TARGETS for at most FUZZ_TEST_SECONDS (6 x 10 s, with start-up and
# corpus loading about a minute in all, as the single query target took before).
FUZZ_TEST_SECONDS ?= 10
FUZZ_TEST_FLAGS   ?= -seed=1 -runs=400000
FUZZ_TARGETS      := query wire config http ws resp
FUZZ_CFLAGS       := -std=c11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
                     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Icore -Iinclude
FUZZ_QUERY_SRCS   := core/query/lexer.c core/query/parser.c core/query/eval.c core/query/qbuf.c \
                     core/query/plan.c core/index/keyenc.c core/util/jsontext.c

# The replication payload decoder, the config loader, and (http, ws) a whole node in the fuzzer's
# process fed raw bytes over loopback: those two load the storage and auth plugins of $(BUILD).
FUZZ_WIRE_SRCS    := core/repl/wire.c core/repl/wire_ops.c core/repl/snapshot_page.c core/db/names.c core/db/hlc.c core/db/record.c \
                     core/util/jsonget.c core/util/jsonbuf.c core/util/jsontext.c core/util/strutil.c \
                     core/util/timeutil.c core/util/log.c
# The RESP parser and value mapping (core/resp), pure.
FUZZ_RESP_SRCS    := core/resp/proto.c core/resp/value.c
FUZZ_CONFIG_SRCS  := core/config/config.c core/util/log.c core/util/strutil.c \
                     core/util/jsonget.c core/util/timeutil.c
FUZZ_NODE_SRCS    := tests/fuzz/fuzz_node.c core/node.c $(filter-out core/main.c,$(wildcard core/*/*.c))
FUZZ_NODE_LIBS    := jansson libsodium libevent libevent_pthreads libevent_openssl libssl libcrypto

.PHONY: fuzz fuzz-build
fuzz-build: $(addprefix $(FUZZ_BUILD)/fuzz_,$(FUZZ_TARGETS))

fuzz: deps-test build fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t && echo "fuzz: $$t for $(FUZZ_SECONDS) s" && \
	  $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -dict=tests/fuzz/$$t.dict -artifact_prefix=$(FUZZ_BUILD)/ -print_final_stats=1 \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t 2>$(FUZZ_BUILD)/fuzz_$$t.log || \
	    { tail -n 60 $(FUZZ_BUILD)/fuzz_$$t.log; exit 1; }; \
	  grep -E '^(Done|stat::number_of_executed_units)' $(FUZZ_BUILD)/fuzz_$$t.log; \
	done

$(FUZZ_BUILD)/fuzz_query: tests/fuzz/fuzz_query.c $(FUZZ_QUERY_SRCS) $(wildcard core/query/*.h core/index/keyenc.h core/index/index.h)
	@mkdir -p $(FUZZ_BUILD)
	clang $(FUZZ_CFLAGS) $$(pkg-config --cflags jansson) -o $@ tests/fuzz/fuzz_query.c \
	  $(FUZZ_QUERY_SRCS) $$(pkg-config --libs jansson) -lm -lpthread

$(FUZZ_BUILD)/fuzz_wire: tests/fuzz/fuzz_wire.c $(FUZZ_WIRE_SRCS) $(wildcard core/*/*.h)
	@mkdir -p $(FUZZ_BUILD)
	clang $(FUZZ_CFLAGS) $$(pkg-config --cflags jansson libevent) -o $@ tests/fuzz/fuzz_wire.c \
	  $(FUZZ_WIRE_SRCS) $$(pkg-config --libs jansson libsodium libevent) -lm -lpthread

$(FUZZ_BUILD)/fuzz_config: tests/fuzz/fuzz_config.c $(FUZZ_CONFIG_SRCS) core/config/config.h
	@mkdir -p $(FUZZ_BUILD)
	clang $(FUZZ_CFLAGS) $$(pkg-config --cflags jansson) -o $@ tests/fuzz/fuzz_config.c \
	  $(FUZZ_CONFIG_SRCS) $$(pkg-config --libs jansson) -lm -lpthread

$(FUZZ_BUILD)/fuzz_resp: tests/fuzz/fuzz_resp.c $(FUZZ_RESP_SRCS) $(wildcard core/resp/*.h)
	@mkdir -p $(FUZZ_BUILD)
	clang $(FUZZ_CFLAGS) $$(pkg-config --cflags jansson libevent) -o $@ tests/fuzz/fuzz_resp.c \
	  $(FUZZ_RESP_SRCS) $$(pkg-config --libs jansson libevent) -lm -lpthread

# The whole-node targets (http, ws) share one set of objects, compiled in parallel under -j: as
# two single clang commands they took 40 s each on one core of a CI run.
FUZZ_NODE_OBJS    := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(FUZZ_NODE_SRCS))

$(FUZZ_BUILD)/obj/%.o: %.c tests/fuzz/fuzz_node.h $(wildcard core/*.h core/*/*.h)
	@mkdir -p $(@D)
	@clang $(FUZZ_CFLAGS) -DLD_VERSION='"fuzz"' -Itests/fuzz \
	  $$(pkg-config --cflags $(FUZZ_NODE_LIBS)) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_NODE_OBJS)
	@echo "clang: linking $@"
	@clang $(FUZZ_CFLAGS) -o $@ $^ $$(pkg-config --libs $(FUZZ_NODE_LIBS)) -lwslay -ldl -lm -lpthread

# Kept between runs, so a change recompiles only what it touched.
.SECONDARY: $(FUZZ_NODE_OBJS) $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_http.o $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_ws.o

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
