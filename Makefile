# plantwatch: `make demo` runs the whole mission, `make test` the test suite; each installs what it needs.
# Infrastructure targets use Docker Compose when a Docker engine answers, the local stack (no Docker) otherwise.

PYTHON ?= python3
VENV ?= .venv
PW := $(VENV)/bin/plantwatch
DOCKER := $(shell docker info >/dev/null 2>&1 && echo yes)
COMPOSE := docker compose -f docker-compose.yml

.PHONY: deps system-deps up down status demo test bench lint kafka-up clickhouse-up prometheus-up grafana-up \
	alertmanager-up

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# The local stack's own services need a JDK with Maven (Kafka), Prometheus and Alertmanager; pip brings ClickHouse.
# Chromium (headless) screenshots the Alertmanager UI in the tests and the demo.
system-deps:
	scripts/install-system-deps.sh

ifeq ($(DOCKER),yes)
deps: $(VENV)/.installed
else
deps: $(VENV)/.installed system-deps
endif

ifeq ($(DOCKER),yes)
up: deps ; $(COMPOSE) up -d --wait
down: ; $(COMPOSE) down
kafka-up: ; $(COMPOSE) up -d --wait kafka
clickhouse-up: ; $(COMPOSE) up -d --wait clickhouse
prometheus-up: ; $(COMPOSE) up -d --wait prometheus
alertmanager-up: ; $(COMPOSE) up -d --wait alertmanager
grafana-up: ; $(COMPOSE) up -d --wait grafana
else
up: deps ; $(PW) stack up
down: ; $(PW) stack down
kafka-up: deps ; $(PW) stack up kafka
clickhouse-up: deps ; $(PW) stack up clickhouse
prometheus-up: deps ; $(PW) stack up prometheus
alertmanager-up: deps ; $(PW) stack up alertmanager
grafana-up:
	@echo "Grafana needs Docker (no Docker engine answers here) or a Grafana 11.6 install of your own." >&2
	@echo "Provisioning to mount or copy: $(CURDIR)/grafana/provisioning (datasources, dashboards, alerting)." >&2
	@exit 1
endif

status: deps ; $(PW) stack status

demo: deps
	$(PW) demo

# Two workers, each test module on one of them (tests/conftest.py: pytest_xdist_make_scheduler).
TEST_WORKERS ?= 2
test: deps system-deps
	PLANTWATCH_STOP_STACK=1 $(VENV)/bin/python -m pytest -n $(TEST_WORKERS)

bench: deps
	for script in bench/*.py; do $(VENV)/bin/python $$script || exit 1; done

# ruff, then the import contracts (pyproject.toml's [tool.importlinter]: the floors cli > demo > wings > core).
lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python scripts/lint-imports.py

# grafana/dashboards and grafana/provisioning/alerting from grafana-foundation-sdk's builders (a test checks they match).
.PHONY: grafana-build
grafana-build: deps ; $(VENV)/bin/python -m plantwatch.grafana_build
