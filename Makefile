# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both build .venv/ from nothing with the pinned versions in requirements.lock (runtime); `make test` adds
# requirements-test.lock (pytest, selenium). constraints.txt holds the upper bounds that keep things working.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PIP := $(BIN)/pip install --quiet -c constraints.txt
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test test-fast lint bench venv clean browser postgres screenshots loadtest

$(STAMP): requirements.lock constraints.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(PIP) -r requirements.lock
	$(PIP) --no-deps -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.lock
	$(PIP) -r requirements-test.lock
	touch $(TEST_STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/thb-signals demo --out demo-out

# The review page's browser tests drive Debian's chromium through its chromedriver (no browser downloads).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The casework database's PostgreSQL tests start a throwaway server from Debian's postgresql package.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# Test files run on TEST_WORKERS processes (pytest-xdist), each file whole on one of them (its fixtures are built
# once): most tests wait on a subprocess, a server or a browser, so two processes keep two cores busy.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder  # in collection order: files with slow tests first

# Everything, the slow tests too (a real Prefect server, the browser, PostgreSQL, the load test): before a release.
test: $(TEST_STAMP) browser postgres lint
	$(BIN)/python -m pytest $(XDIST)

# Lint and format checks (ruff): imports sorted, no unused names, one format.
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The quick loop while working: without the tests marked slow.
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow"

screenshots: $(TEST_STAMP) browser
	THB_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_review_browser.py tests/test_review_cases_browser.py -k screenshots

bench: $(STAMP)
	$(BIN)/thb-signals bench

# 20 investigators on the review page while a batch ingests and scores (loopback only); figures in the README.
loadtest: $(STAMP)
	$(BIN)/thb-signals loadtest

clean:
	rm -rf $(VENV) demo-out
