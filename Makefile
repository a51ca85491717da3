# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both build .venv/ from nothing with the pinned versions in requirements.lock.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: demo test bench venv clean browser screenshots

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/thb-signals demo --out demo-out

# The review page's browser tests drive Debian's chromium through its chromedriver (no browser downloads).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: $(STAMP) browser
	$(BIN)/python -m pytest

screenshots: $(STAMP) browser
	THB_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_review_browser.py -k screenshots

bench: $(STAMP)
	$(BIN)/thb-signals bench

clean:
	rm -rf $(VENV) demo-out
