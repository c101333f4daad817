# foxlake: `make demo` and `make test` each work alone on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export DAGSTER_HOME := $(CURDIR)/.dagster/home

.PHONY: demo demo-loop test dev dashboard browser lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: configs/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp configs/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/foxlake demo

# the closed loop under dagster dev, in ./RESULTS-loop (about 4 minutes): flip, decay, retrain, promotion, hot reload
demo-loop: $(STAMP)
	$(VENV)/bin/foxlake --results RESULTS-loop demo --loop --bridge-port 8765

test: $(STAMP) browser
	$(PY) -m pytest -q

# the dashboard test drives Debian's chromium (never a downloaded browser); installed here when missing
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the dashboard test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	  || echo "WARNING: could not install Debian's chromium (apt-get install chromium): the dashboard test will be skipped" >&2

# the bridge and the dashboard over RESULTS (after `make demo`): http://127.0.0.1:8765/
dashboard: $(STAMP)
	$(VENV)/bin/foxlake bridge serve

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/foxlake ui --host 127.0.0.1 --port 3000

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf RESULTS RESULTS-loop .dagster
