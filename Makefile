# Stable entry points of meshops.cilium. Everything sets itself up: a virtual
# environment from requirements-test.txt, Go builds cached under ~/.cache/meshops,
# and a local fleet of real Kubernetes API servers.
SHELL := /bin/bash
CLUSTERS ?= 3
PY ?= python3
VENV ?= .venv
FLEET := $(VENV)/bin/python -m hack.fleet
# Every ansible task starts Python processes that import ansible, kubernetes and cryptography: with
# PYTHONDONTWRITEBYTECODE set (some images set it) each of them compiles those sources again, about
# twice the CPU of a task. Byte-code is cached for everything started from here.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv build fleet-up fleet-down fleet-status test unit sanity lint integration demo bench clean

venv:
	@bash hack/venv.sh $(VENV)

build: venv
	@$(FLEET) build

fleet-up: build
	@$(FLEET) up --clusters $(CLUSTERS)

fleet-down: venv
	@$(FLEET) down

fleet-status: venv
	@$(FLEET) status

unit: venv
	@bash hack/unit.sh $(VENV) .venv-oldest

sanity: venv
	@bash hack/sanity.sh

lint: venv
	@bash hack/lint.sh $(VENV)

integration: build
	@MESHOPS_FLEET_CLUSTERS=4 $(VENV)/bin/python -m hack.integration -- -v

test:
	@bash hack/test.sh

# The main job on the local default fleet: start 3 clusters, converge the mesh, print its status.
demo: build
	@bash hack/demo.sh $(CLUSTERS)

clean: fleet-down
	rm -rf $(VENV) tests/output

# Performance of the playbooks against the floor, kubernetes.core and cilium-cli, on a fleet of its
# own (build/bench/fleet): BENCH_SIZES="2 3 5 8" by default. Results in build/bench/.
bench: build
	@$(VENV)/bin/python -m benchmarks.bench
