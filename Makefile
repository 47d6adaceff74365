# metaanalysis: reproducible pipeline.  `make help` lists the verbs.
# Everything is a file target; .PHONY only for verbs.  The only prerequisite on the
# machine is python3 (>= 3.11) and make: the virtualenv is built here.

SHELL      := /bin/bash
PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed
TESTSTAMP  := $(VENV)/.installed-test
BROWSER    := $(VENV)/.browser
REGISTRY   := trials/registry.csv
PLAN       := trials/analyses.toml
SCHEMA     := trials/schema.json
# optional inputs next to the registry: RoB 2 judgements and the search log (the evidence date)
EVIDENCE   := $(wildcard trials/rob.csv trials/searches.csv)
SRC        := $(shell find metaanalysis -name '*.py' -o -name '*.c' -o -name '*.j2' -o -name '*.css' -o -name '*.json' -o -name '*.woff' 2>/dev/null)
PIP        := $(BIN)/python -m pip --disable-pip-version-check -q
CHROMIUM   ?= /usr/bin/chromium

.DEFAULT_GOAL := help
.PHONY: help report validate test test-fast reference bench sweep batch panel-pack clean distclean

help: ## list the verbs
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- environment ------------------------------------------------------------------
$(STAMP): pyproject.toml setup.py metaanalysis/_kernel.c metaanalysis/_kernel_cv.c
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "metaanalysis needs Python >= 3.11; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e .
	@touch $@

$(TESTSTAMP): $(STAMP)
	$(PIP) install -e '.[test,browser,batch,dask,crosscheck]'
	@touch $@

# Debian's Chromium is the real browser for the report test (Playwright drives it by path;
# Playwright's own browser download is not used).
$(BROWSER): $(TESTSTAMP)
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing Debian chromium for the browser test"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	fi
	@test -x $(CHROMIUM) || { echo "chromium not found at $(CHROMIUM); install Debian's chromium"; exit 1; }
	@touch $@

# --- the pipeline -----------------------------------------------------------------
reports/index.html: $(STAMP) $(REGISTRY) $(PLAN) $(SCHEMA) $(EVIDENCE) $(SRC)
	$(BIN)/metaanalysis report --registry $(REGISTRY) --plan $(PLAN) --out reports

report: reports/index.html ## validate the registry and build reports/ (only when inputs changed)

validate: $(STAMP) ## check trials/registry.csv and the analysis plan, listing every problem
	$(BIN)/metaanalysis validate $(REGISTRY) --plan $(PLAN)

test: $(BROWSER) ## run the whole test suite (installs what it needs)
	$(BIN)/python -m pytest -q

test-fast: $(TESTSTAMP) ## tests without the browser
	$(BIN)/python -m pytest -q -m 'not browser'

reference: ## regenerate metafor fixtures (needs R: apt-get install -y r-cran-metafor)
	Rscript tests/reference/make_fixtures.R tests/reference
	Rscript tests/reference/make_binary_fixtures.R tests/reference

bench: $(TESTSTAMP) ## every speed ratio of issue #15 (PyMARE, statsmodels, metafor when R is present, start-up) + JSON
	$(BIN)/python benchmarks/bench_pool.py

sweep: $(TESTSTAMP) ## robustness sweep: 100,000 random datasets through pool_many and pool
	$(BIN)/python benchmarks/robustness_sweep.py

BATCH_DIRS ?=
batch: $(TESTSTAMP) ## build reports for BATCH_DIRS="dir1 dir2 ..." in parallel
	@test -n "$(BATCH_DIRS)" || { echo 'usage: make batch BATCH_DIRS="dir1 dir2"'; exit 2; }
	$(BIN)/metaanalysis batch $(BATCH_DIRS) --out batch-reports -j $${JOBS:-2}

panel-pack: reports/index.html ## print reports/ to one PDF, panel-pack.pdf (overview + every page; headless Chromium)
	@test -x $(CHROMIUM) || { echo "chromium not found at $(CHROMIUM); install Debian's chromium (make test does)"; exit 1; }
	$(BIN)/metaanalysis pack --reports reports --out panel-pack.pdf --chromium $(CHROMIUM)

clean: ## remove built reports and caches (keeps the virtualenv)
	find reports -mindepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf panel-pack.pdf batch-reports
	rm -rf tests/output .pytest_cache .hypothesis benchmarks/output
	find . -name __pycache__ -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean ## also remove the virtualenv
	rm -rf $(VENV) *.egg-info
