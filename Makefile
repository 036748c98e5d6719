# The commands a newcomer needs: make, make test, make run, make bench,
# make install; and for hardening: make sanitize, make fuzz.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
PREFIX ?= /usr/local
DESTDIR ?=
SAN_CC ?= clang
FUZZ_TIME ?= 600

.PHONY: all test run bench install clean sanitize sanitize-asan sanitize-tsan fuzz

all: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Run a program on gomalloc (LD_PRELOAD) with its statistics report at exit:
# the bundled demo by default, or CMD="any command".
run: all
	$(BUILD)/gomalloc-run --stats $(if $(CMD),$(CMD),$(BUILD)/gomalloc-demo)

# Side-by-side benchmark against glibc, jemalloc, mimalloc, tcmalloc (issue 5),
# with real programs (python3, sqlite3, gcc, git, PostgreSQL) and issue 13's goals;
# QUICK=1 for a short run. Report: bench/out/report.md.
bench: all
	QUICK=$(QUICK) python3 bench/run.py

# Install into $(DESTDIR)$(PREFIX): libgomalloc.so.0 and libgomalloc.a, the
# header, gomalloc(3), a pkg-config file, a CMake package, gomalloc-run and
# gomalloc-plot.
install: all
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# Sanitizer builds of the test library and unit tests (the standard-name
# library cannot run under a sanitizer, which owns malloc): every unit test
# under ASan+UBSan in build-asan, the threaded ones under TSan in build-tsan.
sanitize: sanitize-asan sanitize-tsan

sanitize-asan:
	CC=$(SAN_CC) cmake -S . -B build-asan -DGM_SANITIZE=address $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS) -L unit

sanitize-tsan:
	CC=$(SAN_CC) cmake -S . -B build-tsan -DGM_SANITIZE=thread $(CMAKE_FLAGS)
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -j $(JOBS) -L threads

# The libFuzzer target for FUZZ_TIME seconds; its corpus grows in
# $(BUILD)/fuzz/corpus, crashing inputs land in $(BUILD)/fuzz.
fuzz: all
	@test -x $(BUILD)/fuzz/fuzz_api || { echo "no fuzz_api: clang with libFuzzer is needed"; exit 1; }
	mkdir -p $(BUILD)/fuzz/corpus
	cd $(BUILD)/fuzz && ./fuzz_api -max_total_time=$(FUZZ_TIME) -max_len=4096 -timeout=30 -print_final_stats=1 corpus

clean:
	rm -rf $(BUILD)
