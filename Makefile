# Two commands: `make run` and `make test`. Both create/refresh .venv and build the starter models if missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test venv models clean-db postgres

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

# PostgreSQL 15 (Debian package) for the ducklake:postgres: tests; installed when missing and we are root.
# The tests run their own server as the postgres user on a free port: the package's cluster is stopped.
postgres:
	@test -x /usr/lib/postgresql/15/bin/pg_ctl || { test "$$(id -u)" = 0 && apt-get update -q \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql \
	  && (pg_ctlcluster 15 main stop 2>/dev/null || true); } \
	  || echo "PostgreSQL 15 not installed: the ducklake:postgres tests are skipped"

test: models postgres
	$(PY) -m pytest -q

clean-db:
	rm -f data/*.duckdb data/*.duckdb.wal
