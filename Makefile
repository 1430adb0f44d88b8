# retention-report — run `make` (or `make help`) for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/retention-report
STAMP := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp
KERNEL ?= retention-report

PERIOD ?=
PERIODS ?=
CONFIG ?=
DATA ?=
TO ?=
DRY_RUN ?=
AS_OF ?=
N ?=
PYTEST_ARGS ?=

# The values users pass (make report PERIOD=…) never reach a shell as code: taken literally (no make
# expansion: `$(shell …)` stays text), exported, and read in recipes as quoted shell variables
# ("$$PERIOD"), never spliced into the recipe text.
override PERIOD := $(value PERIOD)
override PERIODS := $(value PERIODS)
override CONFIG := $(value CONFIG)
override DATA := $(value DATA)
override TO := $(value TO)
override DRY_RUN := $(value DRY_RUN)
override AS_OF := $(value AS_OF)
override KERNEL := $(value KERNEL)
override N := $(value N)
export PERIOD PERIODS CONFIG DATA TO AS_OF KERNEL N

cli_args = $${CONFIG:+--config "$$CONFIG"} $${DATA:+--data "$$DATA"}
# AS_OF=YYYY-MM-DD: the day a relative PERIOD (last-month …) counts from, instead of today
as_of_arg = $${AS_OF:+--as-of "$$AS_OF"}

# `make report` installs only what reports need (requirements/app.lock); `make test`/`lint`/`bench`
# and `make lab` the development set (requirements/dev.lock: the test extras, JupyterLab), each once
# (its own stamp). Both locks pin every package with its hashes: each fresh install is the same
# product. `make lock` compiles them again from pyproject's ranges (README "Dependencies").
APP_LOCK := requirements/app.lock
DEV_LOCK := requirements/dev.lock
# pip prints each package it collects (progress during the first minute); no bars in logs
PIP_INSTALL = $(PY) -m pip install --disable-pip-version-check --progress-bar off --require-hashes --no-deps

$(STAMP): pyproject.toml $(APP_LOCK)
	@test -x $(PY) || { echo "creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing the locked packages ($(APP_LOCK), $$(grep -c '==' $(APP_LOCK)) packages) into $(VENV): about a minute on a fresh machine"
	$(PIP_INSTALL) -r $(APP_LOCK)
	$(PY) -m pip check
	@# the package itself, built with the locked setuptools/babel (no download of build tools)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@# the editable install runs from the checkout: compile its message catalogs (.po → .mo) in place
	$(VENV)/bin/pybabel --quiet compile -d retention_report/locale -D retention_report
	$(CLI) kernel --name "$$KERNEL" >/dev/null
	@# in a git checkout: notebooks stripped of outputs on commit, diffed by cell (retention_report/gitsetup.py)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then $(CLI) git-setup . >/dev/null; fi
	@rm -f $(TEST_STAMP)
	@touch $(STAMP)
	@echo "environment ready in $(VENV) (Jupyter kernel '$(KERNEL)')"

$(TEST_STAMP): $(STAMP) $(DEV_LOCK)
	@echo "installing the development set ($(DEV_LOCK): tests, lint, JupyterLab) into $(VENV)"
	$(PIP_INSTALL) -r $(DEV_LOCK)
	@# pip never removes: what an earlier lock pinned and this one dropped goes (the environment is the lock)
	$(PY) scripts/drop_unlocked.py $(DEV_LOCK)
	@# the lock is installed without resolving (--no-deps): pip checks that it is complete and consistent
	$(PY) -m pip check
	@touch $(TEST_STAMP)

.PHONY: lock
## Compile requirements/*.lock again from pyproject's ranges (newest versions; review, test, commit)
lock: setup-test
	@# dev first; the application's set is constrained to the same versions (app ⊂ dev)
	$(VENV)/bin/uv pip compile --quiet --upgrade pyproject.toml requirements/build.in requirements/tools.in --extra git --extra test --extra lab \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes -o $(DEV_LOCK)
	$(VENV)/bin/uv pip compile --quiet pyproject.toml requirements/build.in --extra git -c $(DEV_LOCK) \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes -o $(APP_LOCK)
	$(PY) scripts/pin_environment.py
	@git diff --stat -- requirements/ environment.yml 2>/dev/null || true
	@echo "locks compiled and environment.yml pinned: read the diff, run make test (it reinstalls), commit"

# PERIOD is checked before anything is installed or computed
.PHONY: _need_period
_need_period:
	@if [ -z "$$PERIOD" ]; then echo "error: PERIOD is required, e.g. make $(or $(firstword $(filter report metrics email,$(MAKECMDGOALS))),report) PERIOD=2024-Q1 (forms: 2024, 2024-H1, 2024-Q1, 2024-03, 2024-W05, 2024-01-15..2024-02-14, last-week, last-month, last-quarter, last-half, last-year, this-month, this-quarter, this-year)" >&2; exit 2; fi

.PHONY: help
## Show this list of targets
help:
	@echo "retention-report — sales & customer-retention reports"
	@echo
	@echo "Usage: make <target> [PERIOD=2024-Q1|last-month] [AS_OF=2026-11-23] [CONFIG=config.toml] [DATA=payments.parquet]"
	@echo
	@awk '/^## /{desc=substr($$0,4); next} /^[a-zA-Z_-]+:/{ if (desc) { split($$1,a,":"); printf "  \033[36m%-10s\033[0m %s\n", a[1], desc; desc="" } }' $(MAKEFILE_LIST)

.PHONY: setup
## Create .venv (pip), install the package and register the Jupyter kernel (no-op when up to date)
setup: $(STAMP)

.PHONY: setup-test
## Add the test extras to .venv (make test/lint/bench do it themselves)
setup-test: $(TEST_STAMP)

.PHONY: report
## Render reports/<PERIOD>/: report.html, report.pdf, metrics.json, executed notebooks
report: _need_period setup
	@$(CLI) check-period "$$PERIOD" $(as_of_arg) >/dev/null
	$(CLI) run --period "$$PERIOD" $(as_of_arg) $(cli_args)

.PHONY: reports
## Render several periods: make reports PERIODS="2024-Q1 2024-Q2"
reports: setup
	@if [ -z "$$PERIODS" ]; then echo 'error: PERIODS is required, e.g. make reports PERIODS="2024-Q1 2024-Q2"' >&2; exit 2; fi
	@# one run for all periods: every period is checked before anything runs, the data are read once
	@set -f; set --; for p in $$PERIODS; do set -- "$$@" --period "$$p"; done; $(CLI) run "$$@" $(as_of_arg) $(cli_args)

.PHONY: metrics
## Write reports/<PERIOD>/metrics.json only (no notebooks, no rendering)
metrics: _need_period setup
	$(CLI) metrics --period "$$PERIOD" $(as_of_arg) $(cli_args)

.PHONY: index
## Rebuild reports/index.html, the archive of every rendered period (each run updates it too)
index: setup
	$(CLI) index $(cli_args)

.PHONY: email
## Email the report of <PERIOD>, rendering it first if missing (DRY_RUN=1 writes email.eml instead; TO="a@x, b@y" overrides; cron: PERIOD=last-month)
email: _need_period setup
	$(CLI) email --period "$$PERIOD" $(as_of_arg) $(cli_args) $${TO:+--to "$$TO"} $(if $(filter-out 0 no false,$(DRY_RUN)),--dry-run)

.PHONY: sample
## Generate the embedded sample payment log (data/sample/payments.parquet) if missing
sample: setup
	$(CLI) sample-data

.PHONY: lab
## Open JupyterLab on notebooks/explore.ipynb, kernel retention-report with package edits autoreloaded (installs it on first use)
lab: setup-test
	@$(CLI) kernel --name "$$KERNEL" >/dev/null
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/explore.ipynb

.PHONY: test
## Run the whole test suite (installs Chromium/poppler/PostgreSQL first when root and missing)
test: setup-test
	@bash scripts/ensure-system-deps.sh
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-fast
## Run the tests that start no process and render no report (pytest -m "not slow"; README "Tests")
test-fast: setup-test
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

.PHONY: snapshots
## Refresh the syrupy snapshots (tests/__snapshots__) after an intended change, and show what changed
snapshots: setup-test
	@bash scripts/ensure-system-deps.sh
	@# every test that uses the `snapshot` fixture (tests/conftest.py marks it), the report's too
	$(PY) -m pytest -m snapshot --snapshot-update $(PYTEST_ARGS)
	@# what changed: modified and removed snapshot files (diff --stat), new ones (untracked)
	@changed=$$(git status --porcelain --untracked-files=all -- tests/__snapshots__ 2>/dev/null); \
	if [ -z "$$changed" ]; then echo "no snapshot changed"; else \
		git diff --stat -- tests/__snapshots__; echo "$$changed" | grep '^??' || true; \
		echo "snapshots refreshed: review git diff tests/__snapshots__, then commit it with its cause"; fi

.PHONY: lint
## Lint the package and tests with ruff, and type-check the package with mypy (strict)
lint: setup-test
	$(VENV)/bin/ruff check retention_report tests benchmarks
	$(VENV)/bin/mypy

LOCALE := retention_report/locale
.PHONY: catalogs
## Extract the reader's words into retention_report/locale/retention_report.pot, update the ru/de catalogs, compile them
catalogs: setup
	$(VENV)/bin/pybabel extract -F babel.cfg --add-comments=TRANSLATORS: --strip-comment-tags --sort-by-file \
		--project=retention-report --copyright-holder="retention-report" \
		-o $(LOCALE)/retention_report.pot .
	$(VENV)/bin/pybabel update -i $(LOCALE)/retention_report.pot -d $(LOCALE) -D retention_report
	$(VENV)/bin/pybabel compile -d $(LOCALE) -D retention_report --statistics

.PHONY: bench
## Run the metric benchmark (N=1000000 by default; BENCH_ARGS="--skip-pandas --memory-limit 8GB"; README "Performance")
bench: setup-test
	$(PY) benchmarks/bench_metrics.py --rows "$${N:-1000000}" $(BENCH_ARGS)

.PHONY: clean
## Remove rendered reports, caches and the virtual environment (keeps data/)
clean:
	rm -rf reports/ .pytest_cache .ruff_cache $(VENV) build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
