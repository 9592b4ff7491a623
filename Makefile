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

.PHONY: run test venv test-venv models prebuild system-packages setup-run setup-test lock clean-db

# Every set-up step prints one line "[set-up] STEP: N s" (README, "Set-up times").
# $(call timed,STEP,COMMAND): COMMAND runs in one shell; its exit code is kept.
define timed
@t0=$$(date +%s%N); $(2); rc=$$?; t=$$(( ($$(date +%s%N) - t0) / 100000000 )); \
	echo "[set-up] $(1): $$((t / 10)).$$((t % 10)) s"; exit $$rc
endef

# llama-cpp-python has no Linux wheel on PyPI, so pip builds it from source, once per machine: we build
# only what the app uses (the llama library, not the multimodal llava/mtmd one, which the llama.cpp engine
# never loads), on every core. On x86-64 it targets AVX2 (any laptop since about 2013) instead of this
# machine's every instruction: a native build picks up AMX, whose kernels crashed the server (SIGSEGV in
# ggml_backend_amx_mul_mat) on a VM that advertises AMX. pip keys its wheel cache by the source only, not
# by these flags, so the cache lives in a folder named after them (a change of flags rebuilds once).
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON
else
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF
endif
JOBS := $(shell nproc 2>/dev/null || echo 2)
SLM_CACHE_ROOT := $(or $(SLM_CACHE),$(XDG_CACHE_HOME),$(HOME)/.cache)/slm-selector
PIP_CACHE := $(SLM_CACHE_ROOT)/pip-$(shell echo '$(strip $(LLAMA_CMAKE_ARGS))' | sha256sum | cut -c1-12)
PIP_ENV := PIP_CACHE_DIR=$(PIP_CACHE) CMAKE_ARGS="$(strip $(LLAMA_CMAKE_ARGS))" CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS)

$(STAMP): requirements.lock
	$(call timed,venv: create,test -x $(PY) || $(PYTHON) -m venv $(VENV))
	$(call timed,venv: pip upgrade,$(PIP_ENV) $(PY) -m pip install -q --upgrade pip)
	$(call timed,venv: install requirements.lock (builds llama-cpp-python once per machine),\
		$(PIP_ENV) $(PY) -m pip install -q --require-hashes -r requirements.lock)
	@touch $(STAMP)

$(TEST_STAMP): requirements-test.lock $(STAMP)
	$(call timed,venv: install requirements-test.lock,$(PIP_ENV) $(PY) -m pip install -q --require-hashes -r requirements-test.lock)
	@touch $(TEST_STAMP)

venv: $(STAMP)

test-venv: $(TEST_STAMP)

# The build pass of the starter models needs only the system Python and its own .venv-build, so it runs
# beside the .venv install, and so does the scorers' embedding model (same build venv, same cache); `models`
# then registers them with Foundry Local (seconds).
prebuild:
	$(call timed,starter models: build or link from cache,$(PYTHON) -m core.catalog.starter)
	$(call timed,embedding model: build or link from cache,$(PYTHON) -m core.catalog.embedder)

models: venv
	$(call timed,starter models: register,$(PY) -m core setup-models)

# Debian packages the suite needs: PostgreSQL 15 for the ducklake:postgres: tests (the tests run their own
# server as the postgres user on a free port, so the package's cluster is stopped) and chromium for the
# browser tests (never a downloaded browser). One apt transaction, only for what is missing, only as root.
SYSTEM_PACKAGES = $(if $(wildcard /usr/lib/postgresql/15/bin/pg_ctl),,postgresql) \
	$(if $(shell command -v chromium 2>/dev/null),,chromium)
system-packages:
	$(call timed,Debian packages: $(or $(strip $(SYSTEM_PACKAGES)),already installed),\
	if [ -n "$(strip $(SYSTEM_PACKAGES))" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q >/dev/null \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES) >/dev/null \
	    && (pg_ctlcluster 15 main stop 2>/dev/null || true); \
	  else echo "not root: $(SYSTEM_PACKAGES) not installed; the tests that need them are skipped"; fi; fi)

# Independent steps run together: the .venv install (CPU: the llama.cpp build), the model build pass
# (its own venv, then CPU) and apt (network and disk).
setup-run:
	@$(MAKE) --no-print-directory -j3 --output-sync=line venv prebuild
	@$(MAKE) --no-print-directory models

setup-test:
	@$(MAKE) --no-print-directory -j3 --output-sync=line test-venv prebuild system-packages
	@$(MAKE) --no-print-directory models

run: setup-run
	$(PY) -m streamlit run app.py --server.address 127.0.0.1

# CI=true loads Hypothesis's `ci` profile (derandomized, a fixed budget: the same examples on every machine; see
# tests/conftest.py). One pytest-xdist worker per core; the tests that share one PostgreSQL, one browser or the
# real models stay together on one worker (--dist loadgroup). Without pytest-xdist the suite runs in one process.
TEST_WORKERS ?= $(JOBS)
PYTEST_ARGS ?=
test: setup-test
	@t0=$$(date +%s); \
	if $(PY) -c 'import xdist' 2>/dev/null; then par="-n $(TEST_WORKERS) --dist loadgroup"; else par=""; fi; \
	CI=$${CI:-true} $(PY) -m pytest -q $$par --durations=15 $(PYTEST_ARGS); rc=$$?; \
	echo "[tests] $$(( $$(date +%s) - t0 )) s"; exit $$rc

# The test lock is compiled against requirements.lock (-c in requirements-test.txt), so it comes second.
lock:
	@test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q $(LOCK_TOOLS)
	$(COMPILE) -o requirements.lock requirements.txt
	$(COMPILE) -o requirements-test.lock requirements-test.txt
	$(COMPILE) -o requirements-build.lock requirements-build.txt

clean-db:
	rm -f data/*.duckdb data/*.duckdb.wal
