# ksim: `make demo` (the walk-through) and `make test` work on a fresh clone; both install what they need into .venv.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install test demo serve clean bench bench-quick

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "ksim needs Python 3.11 or 3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

# The walk-through, then the certification of the reference broker: out/report.html, out/summary.json, out/junit.xml.
demo: $(STAMP)
	$(BIN)/ksim demo
	$(BIN)/ksim certify --reference-broker --out out

serve: $(STAMP)
	$(BIN)/ksim serve

# Benchmarks (bench/run.py, docs/benchmarks.md): ksim under wrk, side by side with the peers installed in
# bench/.peers (python bench/peers.py --install). Needs wrk (apt-get install wrk). Results: bench/results/.
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .ksim out .pytest_cache
