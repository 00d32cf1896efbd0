# Two commands on a fresh machine:  make demo  (run the pipeline)   make test  (run the tests)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: venv services-up services-down services-status schema topics test lint \
        run demo producer consumer simulator analysis bench drill lock clean \
        build-producer build-consumer build-analysis build-repair push compose-config cfn-lint alerts \
        test-containers

venv: $(INSTALLED)

# Dependencies come from the hashed lock only; the code runs from the checkout (python -m ...).
# uv (itself installed from its own hashed lock) installs the lock in seconds, pip in half a minute.
UV_INSTALL = $(VENV)/bin/uv pip install -q --python $(PY) --require-hashes
$(INSTALLED): requirements.lock requirements-uv.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r requirements-uv.lock
	$(UV_INSTALL) -r requirements.lock
	touch $@

# One hashed lock per image, each from its extra, each pinned to requirements.lock's versions
# (-c), so an image runs exactly what the tests ran. uv keeps the pins already in a lock file
# unless told to upgrade (delete a lock, or `uv pip compile --upgrade`, to move them).
IMAGE_LOCKS := producer consumer analysis repair tools
UV_PIP_COMPILE = $(VENV)/bin/uv pip compile --generate-hashes --python-version 3.11 --no-header
UV_COMPILE = $(UV_PIP_COMPILE) pyproject.toml
lock: venv  ## re-resolve the locks (uv, tests, each image, benchmarks) from pyproject.toml
	echo uv | $(UV_PIP_COMPILE) - -o requirements-uv.lock
	$(UV_COMPILE) --extra dev -o requirements.lock
	for image in $(IMAGE_LOCKS); do \
	  $(UV_COMPILE) --extra $$image -c requirements.lock -o requirements-$$image.lock || exit 1; \
	done
	$(UV_COMPILE) --extra dev --extra bench -o requirements-bench.lock

services-up: venv     ## Kafka + MySQL on loopback, schema applied, topics ensured
	$(PY) ops/services.py up

services-down:        ## stop what services-up started (by PID file)
	$(PY) ops/services.py down

services-status:
	$(PY) ops/services.py status

schema: venv
	$(PY) ops/services.py schema

topics: venv
	$(PY) -m shared.topics ensure

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: venv            ## lint, type-check and the whole suite against real Kafka and MariaDB
	ops/run-tests.sh

test-containers: venv ## every image built and the compose stack run under Docker (installs docker.io, Compose; root)
	$(PY) -m ops.containers

run: venv             ## the pipeline on the live Coinbase feed (needs the internet)
	ops/run.sh live

demo: venv            ## the pipeline offline, fed by the local simulator
	ops/run.sh demo

producer: venv
	$(PY) -m producer

consumer: venv
	$(PY) -m consumer

simulator: venv
	$(PY) -m simulator --port 8765

analysis: venv        ## the read-only HTTP API and chart page on ANALYSIS_PORT (8000), as ticker_reader
	MYSQL_USER=$${MYSQL_USER:-ticker_reader} MYSQL_PASSWORD=$${MYSQL_PASSWORD:-ticker_reader} \
	  $(PY) -m analysis

bench: services-up     ## every benchmark; report in bench/results (BENCH_ARGS="--rows 200000" to shrink)
	$(UV_INSTALL) -r requirements-bench.lock
	$(PY) -m bench $(BENCH_ARGS)

drill: services-up     ## reliability drills on the whole pipeline; prints what was lost (nothing)
	$(PY) -m drills $(DRILL_ARGS)

clean: services-down
	rm -rf .run

# ---------------------------------------------------------------- container images (need a Docker engine)
# make push REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com/coinbase-pipeline TAG=v1.2.3
REGISTRY ?= coinbase-pipeline
TAG ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
DOCKER ?= docker

build-producer:       ## image $(REGISTRY)/producer:$(TAG) (Dockerfile target producer)
	$(DOCKER) build --target producer -t $(REGISTRY)/producer:$(TAG) .

build-consumer:       ## image $(REGISTRY)/consumer:$(TAG) (Dockerfile target consumer)
	$(DOCKER) build --target consumer -t $(REGISTRY)/consumer:$(TAG) .

build-analysis:       ## image $(REGISTRY)/analysis:$(TAG) (Dockerfile target analysis)
	$(DOCKER) build --target analysis -t $(REGISTRY)/analysis:$(TAG) .

build-repair:         ## image $(REGISTRY)/repair:$(TAG) (Dockerfile target repair)
	$(DOCKER) build --target repair -t $(REGISTRY)/repair:$(TAG) .

push: build-producer build-consumer build-analysis build-repair   ## log in first, e.g. aws ecr get-login-password | docker login ...
	$(DOCKER) push $(REGISTRY)/producer:$(TAG)
	$(DOCKER) push $(REGISTRY)/consumer:$(TAG)
	$(DOCKER) push $(REGISTRY)/analysis:$(TAG)
	$(DOCKER) push $(REGISTRY)/repair:$(TAG)

compose-config:       ## docker compose's own check of every profile (needs the compose plugin; make test checks the schema everywhere)
	$(DOCKER) compose --profile demo --profile monitoring --profile per-instrument config -q

# ---------------------------------------------------------------- monitoring (`make test` runs these too)
alerts: venv          ## promtool (Debian's, unpacked when missing): config and rules checked, the rules' unit tests
	$(PY) ops/promtool.py check config deploy/monitoring/prometheus.yml
	$(PY) ops/promtool.py test rules deploy/monitoring/alerts.test.yml

# ---------------------------------------------------------------- AWS (offline checks; `make test` runs them too)
cfn-lint: venv        ## lint deploy/cloudformation/pipeline.yml against AWS's resource specifications
	$(VENV)/bin/cfn-lint deploy/cloudformation/pipeline.yml
