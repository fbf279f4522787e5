# Two commands: `make run` starts everything on embedded defaults; `make test` sets up and runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_ENV := DJANGO_SECRET_KEY=test-only-secret DJANGO_DEBUG=false LOG_FORMAT=text

.PHONY: run run-managed manage test test-cluster test-sentinel test-topologies topologies-stop lint format bench setup setup-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

run: setup
	$(BIN)/python scripts/run_local.py

# The same stack in managed mode (OAuth sign-in beside the header mode, demo logins demo and rep in its banner).
run-managed: setup
	$(BIN)/python scripts/run_local.py --managed

# A management command against the running stack (its Redis, database and sandbox): make manage ARGS="..."
manage: setup
	$(BIN)/python scripts/run_local.py manage $(ARGS)

test: setup-dev
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# The topology group (-m topology: the cache/freshness integration tests and the failover tests) on a real local
# Redis Cluster and Sentinel set (scripts/redis_topologies.py; ports 7000-7005, 6390-6391, 26390-26392), only the
# parametrisations on real Redis (-k "not fake"). test-cluster/test-sentinel start their topology and leave it
# running; test-topologies runs both, then stops them. Celery's broker cannot be a cluster (kombu has no transport):
# the cluster run's broker is TOPOLOGY_BROKER_URL, the single Redis.
TOPOLOGIES := $(BIN)/python scripts/redis_topologies.py
TOPOLOGY_BROKER_URL ?= redis://127.0.0.1:6379/0
TOPOLOGY_PYTEST := $(BIN)/pytest -m topology -k "not fake" $(PYTEST_ARGS)

test-cluster: setup-dev
	url=$$($(TOPOLOGIES) start cluster) && \
	$(TEST_ENV) TEST_REAL_REDIS_URL=$$url REDIS_URL=$$url CELERY_BROKER_URL=$(TOPOLOGY_BROKER_URL) $(TOPOLOGY_PYTEST)

test-sentinel: setup-dev
	url=$$($(TOPOLOGIES) start sentinel) && \
	$(TEST_ENV) TEST_REAL_REDIS_URL=$$url REDIS_URL=$$url $(TOPOLOGY_PYTEST)

test-topologies: setup-dev
	status=0; \
	$(MAKE) --no-print-directory test-cluster || status=1; \
	$(MAKE) --no-print-directory test-sentinel || status=1; \
	$(TOPOLOGIES) stop all; \
	exit $$status

topologies-stop:
	$(TOPOLOGIES) stop all

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(TEST_ENV) $(BIN)/mypy .
	$(BIN)/lint-imports

format: setup-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup-dev
	$(TEST_ENV) $(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
