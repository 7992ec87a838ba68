# ksim: `make demo` (the walk-through) and `make test` work on a fresh clone; both install what they need into .venv.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install test test-install lint demo serve clean bench bench-quick bench-scale reliability certify-pooled mutation

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "ksim needs Python 3.11 or 3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip uninstall --quiet --yes ksim 2>/dev/null || true  # the distribution's name before 0.2.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

# ruff (lint and format) and mypy over the installed namespace (scripts/typecheck); also run by .ci/run.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/typecheck

# The wheel in a fresh virtualenv of a separate project (tests/install; also part of `make test`).
test-install: $(STAMP)
	$(BIN)/python -m pytest -m install tests/install

# The walk-through, then the certification of the reference broker: out/report.html, out/summary.json, out/junit.xml.
demo: $(STAMP)
	$(BIN)/ksim demo
	$(BIN)/ksim certify --reference-broker --out out

serve: $(STAMP)
	$(BIN)/ksim serve

# The second example broker (examples/pooled_broker: pooled partners, its own ids, codes, CLI clock and invoices)
# certified on every packaged scenario, one per pooled partner at a time: out/pooled/report.html.
certify-pooled: $(STAMP)
	$(BIN)/ksim certify --pooled-example --jobs 4 --out out/pooled

# Benchmarks (bench/run.py, docs/benchmarks.md): ksim under wrk, side by side with the peers installed in
# bench/.peers (python bench/peers.py --install). Needs wrk (apt-get install wrk). Results: bench/results/.
bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

# Scale (bench/scale.py): 100k KORM subscriptions' statement, 10k KSS and KORM subscriptions moved 12 months, ksim certify.
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

# The long reliability runs (docs/reliability.md), on SQLite and on a PostgreSQL server started beside them
# (scripts/postgres-test-server): bigger concurrent loads, several SIGKILLs, 200 schemathesis examples per
# operation, a larger SOAP fuzz budget. Figures: out/reliability.jsonl.
reliability: $(STAMP)
	@mkdir -p out
	@rm -f out/reliability.jsonl
	KSIM_TEST_POSTGRES_URL="$$(scripts/postgres-test-server start)" KSIM_REQUIRE_POSTGRES=1 KSIM_RELIABILITY=long \
	KSIM_FUZZ_EXAMPLES=$${KSIM_FUZZ_EXAMPLES:-700} KSIM_RELIABILITY_REPORT=$(CURDIR)/out/reliability.jsonl \
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests/reliability tests/contract

# Mutation testing of the reference broker's billing and vendor-calling code against the suites (scripts/mutate.py):
# writes docs/mutation.md. Every mutant by default (~30 min on 2 cores); MUTATION_ARGS="--limit 60 --seed 1" for a seeded sample.
MUTATION_ARGS ?=
mutation: $(STAMP)
	$(BIN)/python scripts/mutate.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) .ksim out .pytest_cache
