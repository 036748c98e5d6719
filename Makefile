# The commands a newcomer needs: make, make test, make run, make bench,
# make install.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all test run bench install clean

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

# Install into $(DESTDIR)$(PREFIX): libgomalloc.so.0 and libgomalloc.a, the
# header, gomalloc(3), a pkg-config file, a CMake package, gomalloc-run and
# gomalloc-plot.
install: all
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD)
