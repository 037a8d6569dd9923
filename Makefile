# kfserving-operator developer entry points. `make run` and `make test` work on a fresh
# machine: they create the venv and build the control-plane tools when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BIN := .cache/bin
PYTEST_ARGS ?=
BENCH_STAMP := $(VENV)/.bench-installed
# `make bench` is the short default (~6 min); e.g. BENCH_ARGS="--n 5000 --only B1,B3,B4".
BENCH_ARGS ?=

.PHONY: all venv tools run test test-unit test-integration test-lowest lint crds crds-check \
        conformance lock image sdk-venv cluster-up cluster-down clean bench

all: test

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm, KWOK,
## Knative Serving and the conformance checker from Go modules into .cache/ (skipped when
## already built).
tools:
	bash hack/build-tools.sh all
	@if [ -f hack/build-conformance.sh ]; then bash hack/build-conformance.sh; fi

## The main job: the project's own local cluster with real Knative (isolated in a network
## namespace; the stand-in where that cannot run), CRDs, config, the operator. It builds only
## what it needs. Another cluster only when named: make run CLUSTER=external KUBECONFIG=...
run: venv
	$(PY) -m kfserving_operator.devrun

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

## Benchmarks on a control plane of their own: prints the table, writes
## benchmarks/results/latest.{json,md,png}. See benchmarks/README.md.
bench: $(BENCH_STAMP) tools
	$(PY) benchmarks/run.py $(BENCH_ARGS)

## The local cluster with real Knative Serving, in its own network namespace.
cluster-up: venv
	bash hack/build-tools.sh lane
	$(VENV)/bin/kfserving-operator cluster up --knative

cluster-down: venv
	$(VENV)/bin/kfserving-operator cluster down

crds: venv
	$(PY) -m kfserving_operator.api.crd

crds-check: venv
	$(PY) -m kfserving_operator.api.crd --check

lint: venv
	$(VENV)/bin/ruff check kfserving_operator tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	bash hack/lint-workflows.sh

## Every rendered example and golden child through Knative's and Istio's own Go code.
conformance: venv tools
	bash hack/run-conformance.sh

## The lowest versions pyproject.toml allows, in .cache/venv-lowest: import and unit tests.
test-lowest: venv
	bash hack/test-lowest.sh

## requirements.lock: every runtime dependency of the image pinned with its hashes.
lock: venv
	$(VENV)/bin/uv pip compile --quiet --python-version 3.11 --universal --generate-hashes \
	  pyproject.toml hack/image/build-requirements.in -o requirements.lock

## Build the Dockerfile with buildah (no Docker, no registry), check it runs, print its size.
## Needs root; about 100 s, plus about a minute once for the Debian base (see the script).
image:
	bash hack/build-image.sh

## The published kfserving 0.6.1 SDK in .cache/venv-kfserving-sdk for the e2e tier (cached;
## rebuilt only when tests/support/sdk.py changes).
sdk-venv: venv
	$(PY) -m tests.support.sdk

test-unit: venv
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

test-integration: venv tools sdk-venv
	$(VENV)/bin/pytest tests/integration tests/e2e $(PYTEST_ARGS)

test: venv tools sdk-venv
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)
	@if [ -f hack/run-conformance.sh ]; then bash hack/run-conformance.sh; fi

clean:
	rm -rf .cache/cluster .cache/cluster-test .cache/cluster-e2e .pytest_cache .mypy_cache .ruff_cache
