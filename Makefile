# bagalau: the interface for people. `make run` starts the service; `make test` runs every test.
# Each target sets itself up on a fresh machine (virtual environment, install, generated code).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
GEN    := service/gen/bagalau/v1/scoring_pb2.py
PROTOS := $(wildcard proto/bagalau/v1/*.proto)

.PHONY: run test bench check gen clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

gen: $(GEN)
# Generated code goes to service/gen, which is put on sys.path by service/protos.py so that the
# generated `from bagalau.v1 import ...` and `from google.type import ...` resolve unchanged.
# Imports: grpc_tools' well-known types, then googleapis-common-protos (google/type, google/rpc).
$(GEN): $(PROTOS) $(STAMP)
	rm -rf service/gen && mkdir -p service/gen/bagalau/v1
	$(BIN)/python -m grpc_tools.protoc -I proto \
	    -I $$($(BIN)/python -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))') \
	    -I $$($(BIN)/python -c 'import google.type.date_pb2 as m, os; print(os.path.dirname(os.path.dirname(os.path.dirname(m.__file__))))') \
	    --python_out=service/gen --pyi_out=service/gen --grpc_python_out=service/gen $(PROTOS)
	touch service/gen/bagalau/__init__.py service/gen/bagalau/v1/__init__.py
	touch $(GEN)

## Start the scoring service on its embedded defaults with the shipped rules/.
run: $(STAMP) $(GEN)
	$(BIN)/bagalau serve

## Headless Chromium (Debian's package) for the html report tests: installed when missing and we are
## root with apt-get (as on CI); otherwise those tests are skipped and say why.
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
	    echo "chromium is not installed: the html screenshot tests will be skipped"

## Run every test: unit, rule-file tests, service tests.
test: $(STAMP) $(GEN) browser
	$(BIN)/bagalau check rules
	$(BIN)/bagalau test rules
	$(BIN)/python -m pytest

## Benchmarks (pytest-benchmark): compiled evaluator against a hand-written decimal function, and the
## gRPC service (bagalau serve and a client, each its own process) against in-process evaluation.
bench: $(STAMP) $(GEN)
	$(BIN)/python -m pytest tests/bench --benchmark-enable --benchmark-only -p no:cacheprovider

clean:
	rm -rf $(VENV) service/gen .pytest_cache .benchmarks
