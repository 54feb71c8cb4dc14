# The two commands: `make run` (local stack) and `make test` (the static checks, then the test suite).
# Both create the virtualenv .venv from requirements-dev.txt on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# checkov lives in a virtualenv of its own (requirements-checkov.txt).
CHECKOV_VENV ?= .venv-checkov

.PHONY: run lint test package deploy bench bench-next bench-maintenance bench-postprocess bench-lifecycle bench-scale bench-hot-job bench-cold-start bench-cost soak clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .  # the gardener command
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

## run: start the emulators and every function at http://127.0.0.1:$${PORT:-8080}
run: $(VENV)/.installed
	$(PY) -m local.stack

## lint: ruff's rules, ruff's formatting (checked, not applied) and mypy, as configured in pyproject.toml
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## test: the static checks (make lint), then start the emulators, run every test (the offline deployment checks included), stop the emulators
test: lint $(VENV)/.installed $(CHECKOV_VENV)/.installed
	OFFLINE_CHECKS_REQUIRED=1 CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

## package: build the function source (build/function/) and its zip (build/function.zip) for Terraform
package: $(VENV)/.installed
	$(PY) -m deploy.package --out build/function

## deploy: test, package and deploy with Cloud Build (cloudbuild.yaml): make deploy PROJECT=p TF_STATE_BUCKET=b [REGION=r]
REGION ?= us-central1
deploy:
	@test -n "$(PROJECT)" -a -n "$(TF_STATE_BUCKET)" || { echo "usage: make deploy PROJECT=... TF_STATE_BUCKET=... [REGION=$(REGION)]" >&2; exit 2; }
	gcloud builds submit --project=$(PROJECT) --config=cloudbuild.yaml --substitutions=_TF_STATE_BUCKET=$(TF_STATE_BUCKET),_REGION=$(REGION) .

## bench: every benchmark: hot path, next job, maintenance, post-processing, lifecycle, scale, hot job, cold start, then the cost table (prints tables, writes bench/results/)
bench: $(VENV)/.installed
	$(PY) -m bench.hot_path
	$(PY) -m bench.next_job
	$(PY) -m bench.maintenance
	$(PY) -m bench.postprocess
	$(PY) -m bench.lifecycle
	$(PY) -m bench.scale
	$(PY) -m bench.hot_job
	$(PY) -m bench.cold_start
	$(PY) -m bench.cost

## bench-cold-start: import time of functions.main and of each entry point's first-request imports, fresh interpreters (writes bench/results/cold_start.json)
bench-cold-start: $(VENV)/.installed
	$(PY) -m bench.cold_start

## bench-cost: the monthly cost table at M-Lab's scale from the counted operations in bench/results/ (writes bench/results/cost.json)
bench-cost: $(VENV)/.installed
	$(PY) -m bench.cost

## bench-hot-job: K parser tasks (100) on one job at R archives/s (10), and 8 such jobs, through HTTP: writes/s to the busiest document, UpdateCount, detail lag (writes bench/results/hot_job.json)
bench-hot-job: $(VENV)/.installed
	$(PY) -m bench.hot_job

## bench-lifecycle: K parsers (1, 8, 32) doing next/update/heartbeat/postProcessing through HTTP (writes bench/results/lifecycle.json)
bench-lifecycle: $(VENV)/.installed
	$(PY) -m bench.lifecycle

## bench-scale: status page (HTTP, HTML and JSON), expiry and snapshot export at 1k and 10k jobs; SIZES=1000,10000,100000 for more (writes bench/results/scale.json)
bench-scale: $(VENV)/.installed
	$(PY) -m bench.scale $(if $(SIZES),--sizes $(SIZES))

## bench-postprocess: the post-processing tick benchmark alone (writes bench/results/postprocess.json)
bench-postprocess: $(VENV)/.installed
	$(PY) -m bench.postprocess

## bench-next: the next-job benchmark alone (prints tables, writes bench/results/next_job.json)
bench-next: $(VENV)/.installed
	$(PY) -m bench.next_job

## bench-maintenance: the maintenance scale benchmark alone (prints tables, writes bench/results/maintenance.json)
bench-maintenance: $(VENV)/.installed
	$(PY) -m bench.maintenance

## soak: parsers, ticks, an operator and injected faults at once for SECONDS (600), then invariants: make soak [SECONDS=600] [SEED=n]
SECONDS ?= 600
soak: $(VENV)/.installed
	$(PY) -m local.soak --seconds $(SECONDS) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build .local .pytest_cache bench/results
