# Two commands: `make run` and `make test`. Both create/refresh .venv and build the starter models if missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv models browser clean-db

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@touch $(STAMP)

venv: $(STAMP)

models: venv
	$(PY) -m core setup-models

run: models
	$(PY) -m streamlit run app.py --server.address 127.0.0.1

# The browser tests drive Debian's chromium (never a downloaded browser); playwright comes from requirements.txt.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "chromium could not be installed: the browser tests (tests/browser) will be skipped"

test: models browser
	$(PY) -m pytest -q

clean-db:
	rm -f data/*.duckdb data/*.duckdb.wal
