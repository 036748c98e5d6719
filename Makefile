# The commands a newcomer needs: make, make test, make run, make bench.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all test run bench clean

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

# Side-by-side benchmark against glibc, jemalloc, mimalloc, tcmalloc (issue 5);
# QUICK=1 for a short run. Report: bench/out/report.md.
bench: all
	QUICK=$(QUICK) python3 bench/run.py

clean:
	rm -rf $(BUILD)
