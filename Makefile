# Shancheng Chain — the two commands of README.md:
#   make run    install what is needed (Python venv, npm solc + anvil for your own contracts), then run the main job
#   make test   install what is needed (Python venv, npm solc + anvil), then run the whole test suite
#
# Everything is installed into this checkout: .venv/ (Python), node_modules/ (npm), .bin/cometbft (Go) and the ABCI
# message classes generated from CometBFT's .proto files (nodes/shancheng/nodes/abci/_generated/, `make proto`).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# quiet: setuptools' build-backend warnings (about 200 lines) are not for the user
PIP    := PYTHONWARNINGS=ignore $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed

COMETBFT_VERSION := v0.38.25
COMETBFT := .bin/cometbft
PROTO_STAMP := nodes/shancheng/nodes/abci/_generated/STAMP

.PHONY: run test bench lint clean venv npm proto $(COMETBFT)

run: venv npm $(COMETBFT) proto
	$(VENV)/bin/shancheng dev --home .shancheng-dev --out demo-out

test: venv npm $(COMETBFT) proto
	$(PY) -m pytest -q

bench: venv npm
	for b in bench/[!_]*.py; do $(PY) $$b || exit 1; done

lint: venv
	$(VENV)/bin/ruff check sdk chain nodes apps contracts tests bench
	$(VENV)/bin/mypy --strict -p shancheng.sdk -p shancheng.contracts -p shancheng.chain -p shancheng.nodes -p shancheng.apps

venv: $(STAMP)

DISTS := sdk contracts chain nodes apps tests/support

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(DISTS))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24" "setuptools>=77" wheel
	$(PIP) install $(addprefix -e ,$(DISTS)) -e ".[dev]"
	touch $(STAMP)

npm: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	touch node_modules/.installed

# CometBFT, pinned, built from the Go module proxy into this checkout (never $GOPATH/bin); re-installed only when
# the binary is missing or reports another version, so a re-run is instant
$(COMETBFT):
	@command -v go >/dev/null || { echo "Go >= 1.22 is needed to install CometBFT (see README.md)" >&2; exit 1; }
	@test "$$($(COMETBFT) version 2>/dev/null)" = "$(COMETBFT_VERSION:v%=%)" || { \
	  echo "installing CometBFT $(COMETBFT_VERSION) into .bin/"; \
	  CGO_ENABLED=0 GOBIN=$(CURDIR)/.bin go install github.com/cometbft/cometbft/cmd/cometbft@$(COMETBFT_VERSION); }

# the ABCI message classes, generated with grpcio-tools from the pinned module's .proto files (not committed)
proto: $(PROTO_STAMP)

$(PROTO_STAMP): $(STAMP) nodes/shancheng/nodes/abci/generate.py Makefile
	$(PY) -m shancheng.nodes.abci.generate --cometbft-version $(COMETBFT_VERSION)

clean:
	rm -rf $(VENV) node_modules demo-out .pytest_cache .bin nodes/shancheng/nodes/abci/_generated
