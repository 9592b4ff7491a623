# Two commands: `make run` and `make test`. Both create/refresh .venv from the locked dependencies
# (requirements.lock; `make test` adds requirements-test.lock) and build the starter models if missing.
# `make lock` refreshes the locks from the loose inputs (requirements*.txt); see README, "Dependencies".
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# `make lock` runs pip-tools from its own throwaway venv (git-ignored), never from .venv.
LOCK_VENV := .venv-lock
LOCK_TOOLS := pip==26.3 pip-tools==7.6.2
# make lock UPGRADE=1 moves every pin to the newest version the inputs allow; plain `make lock` keeps
# the pins that still satisfy the inputs (so adding one package does not move the others).
UPGRADE ?=
COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)

.PHONY: run test venv test-venv models clean-db lock postgres browser

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	@touch $(STAMP)

$(TEST_STAMP): requirements-test.lock $(STAMP)
	$(PY) -m pip install -q --require-hashes -r requirements-test.lock
	@touch $(TEST_STAMP)

venv: $(STAMP)

test-venv: $(TEST_STAMP)

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

# The browser tests drive Debian's chromium (never a downloaded browser); playwright comes from requirements-test.txt.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "chromium could not be installed: the browser tests (tests/browser) will be skipped"

test: test-venv models postgres browser
	$(PY) -m pytest -q

# The test lock is compiled against requirements.lock (-c in requirements-test.txt), so it comes second.
lock:
	@test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q $(LOCK_TOOLS)
	$(COMPILE) -o requirements.lock requirements.txt
	$(COMPILE) -o requirements-test.lock requirements-test.txt
	$(COMPILE) -o requirements-build.lock requirements-build.txt

clean-db:
	rm -f data/*.duckdb data/*.duckdb.wal
