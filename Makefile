# The README's two commands: `make run` starts everything, `make test` tests everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)

.PHONY: run test lint browser bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

## run: install, migrate, start web + worker + scheduler on the embedded default
run: $(STAMP)
	$(BIN)/python -m mailer.devserver

## test: ruff, then every test (PostgreSQL, Redis, aiosmtpd, Celery, Chromium)
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

## browser: Debian's Chromium for the Playwright tests (Playwright cannot download one here)
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

## bench: every benchmark in bench/, one after the other (~35 min; BENCH_FLAGS=--quick: ~15)
bench: $(STAMP)
	@command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/signup.py
	$(BIN)/python bench/campaign.py $(BENCH_FLAGS)
	$(BIN)/python bench/signing.py $(BENCH_FLAGS)
	$(BIN)/python bench/subscriber_search.py
	$(BIN)/python bench/automatic.py
	$(BIN)/python bench/bounces.py

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## lock: re-pin the whole tree after changing pyproject.toml
lock:
	rm -rf /tmp/mailer-lock && $(PYTHON) -m venv /tmp/mailer-lock
	/tmp/mailer-lock/bin/pip install --quiet -e '.[test]'
	{ echo "# The whole dependency tree, pinned. Regenerate with: make lock"; \
	  /tmp/mailer-lock/bin/pip freeze --exclude-editable; } > requirements.lock

clean:
	rm -rf $(VENV) var
