# Two commands: `make run` and `make test`. Both create/refresh .venv and build the starter models if missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv models clean-db

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

test: models
	$(PY) -m pytest -q

clean-db:
	rm -f data/*.duckdb data/*.duckdb.wal
