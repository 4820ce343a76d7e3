# entropi-tiny: `make demo` runs the pipeline on the built-in data, `make test` the test suite.
# Both start with `make setup`, which installs everything from nothing and is quick when done.
# `make fuzz` runs every coverage-guided fuzz target (firmware/fuzz/fuzz_targets.py) for FUZZ_SECONDS each.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm clang-14 libclang-rt-14-dev
FUZZ_SECONDS ?= 300
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup apt test demo bench readme-figures fuzz clean

setup: apt $(STAMP)

# The ARM toolchain, QEMU and clang-14 with libFuzzer (libclang-rt-14-dev) come from Debian;
# skipped when already there.
apt:
	@if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null \
	    || [ ! -f /usr/lib/arm-none-eabi/include/stdlib.h ] || ! command -v clang-14 >/dev/null \
	    || ! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then \
	  echo "installing $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

# The Python environment, pinned by requirements.lock (torch 2.14.1 installs from local disk).
$(STAMP): requirements.lock pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests

# The pipeline on the built-in data with the quick preset (recorded in the run
# folder by the first command, read by the others); every stage skips itself
# when its key is unchanged, so a second `make demo` is quick.
demo: setup
	$(VENV)/bin/entropi-tiny prune --preset quick
	$(VENV)/bin/entropi-tiny select
	$(VENV)/bin/entropi-tiny transfer --all-levels
	$(VENV)/bin/entropi-tiny report
	$(VENV)/bin/entropi-tiny build --board nucleo-f746
	$(VENV)/bin/entropi-tiny emulate --run-dir export/default
	$(VENV)/bin/entropi-tiny status

# libFuzzer targets seeded with real images and frames; findings go to runs/fuzz/<target>/artifacts.
fuzz: setup
	$(PY) firmware/fuzz/run_fuzzers.py --seconds $(FUZZ_SECONDS)

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
	$(PY) benchmarks/readme_figures.py

# The README's figure block, rendered from benchmarks/results/*.json (CI checks it).
readme-figures:
	python3 benchmarks/readme_figures.py

clean:
	rm -rf $(VENV) export/default
