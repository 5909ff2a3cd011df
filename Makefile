# Two commands a newcomer needs: `make demo` and `make test`. Each sets itself up on a fresh clone.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean setup lock

setup: $(STAMP) node_modules/.package-lock.json

# The virtual environment is built from the lock (locks/dev.txt: every package pinned with its hashes; how to update it:
# locks/README.md), and rebuilt from scratch whenever the lock or pyproject.toml changes, so no package outlives its pin.
$(STAMP): pyproject.toml locks/dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r locks/dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@touch $(STAMP)

# Azurite comes from package-lock.json, exactly.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

# Lint, then the Bicep and shell scripts offline (checkov and shellcheck in their own venv), the CI templates in
# examples/ci/ against their schemas (scripts/ci-schemas.sh, its own venv), then the suite
# (scripts/browser.sh first installs Debian's chromium for the review page's browser tests when it can).
test: setup
	$(PY) -m ruff check .
	bash scripts/checkov.sh
	bash scripts/ci-schemas.sh
	bash scripts/browser.sh
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .

demo: setup
	$(PY) -m devkit.demo

# Each benchmark starts its own services and prints its numbers; see "Benchmarks" in docs/testing.md.
bench: setup
	$(PY) bench/bench_emulator.py
	$(PY) bench/bench_upload.py
	$(PY) bench/bench_function.py

# The local Custom Vision service fuzzed from the official specs, deeper than `make test` runs it
# (tests/contract/test_fuzz_spec.py): FUZZ_EXAMPLES examples per operation plus the coverage phase's boundary values,
# derandomized; the figures (operations, requests, statuses, error codes) go to reports/fuzz.json.
FUZZ_EXAMPLES ?= 100
.PHONY: fuzz
fuzz: setup
	@mkdir -p reports
	CV_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CV_FUZZ_COVERAGE=1 CV_FUZZ_REPORT=reports/fuzz.json \
		$(PY) -m pytest tests/contract/test_fuzz_spec.py -q -p no:cacheprovider -s

# Re-resolve the lock files after changing a pin (locks/README.md).
lock:
	bash scripts/lock.sh

clean:
	rm -rf .local reports bench/out
