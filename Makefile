# The two commands: `make run` (local stack) and `make test` (the test suite).
# Both create the virtualenv .venv from requirements-dev.txt on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test bench bench-next bench-maintenance bench-postprocess bench-lifecycle bench-scale clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## run: start the emulators and every function at http://127.0.0.1:$${PORT:-8080}
run: $(VENV)/.installed
	$(PY) -m local.stack

## test: start the emulators, run every test, stop the emulators
test: $(VENV)/.installed
	$(PY) -m pytest

## bench: every benchmark: hot path, next job, maintenance, post-processing (prints tables, writes bench/results/)
bench: $(VENV)/.installed
	$(PY) -m bench.hot_path
	$(PY) -m bench.next_job
	$(PY) -m bench.maintenance
	$(PY) -m bench.postprocess
	$(PY) -m bench.lifecycle
	$(PY) -m bench.scale

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

clean:
	rm -rf $(VENV) .local .pytest_cache bench/results
