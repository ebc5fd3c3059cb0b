# Shancheng Chain — the two commands of README.md:
#   make run    install what is needed (Python venv, npm solc + anvil for your own contracts), then run the main job
#   make test   install what is needed (Python venv, npm solc, anvil and ethers), then run the whole test suite
# Both also install the Debian packages they need when missing (PostgreSQL, Chromium: `make system`).
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

ECHARTS := apps/shancheng/apps/web/static/vendor/echarts.min.js
SWAGGER_UI := apps/shancheng/apps/web/static/vendor/swagger-ui

.PHONY: run test bench lint clean venv npm proto system web native $(COMETBFT)

run: system venv npm $(COMETBFT) proto web native
	$(VENV)/bin/shancheng district run --home .shancheng-district

# the suite on TEST_WORKERS parallel pytest-xdist workers (most tests wait on nodes and networks, not the CPU, so
# more workers than cores pay); tests that share a file's node or network stay together on one worker, in order
# (tests/conftest.py). TEST_WORKERS=0 runs it in one process. The 20 slowest tests are listed at the end; every
# test's time and outcome is in tests/artifacts/junit.xml (e.g. to see where the suite's time goes).
TEST_WORKERS ?= 4

test: system venv npm $(COMETBFT) proto web native
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=20 --junitxml=tests/artifacts/junit.xml

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

# Debian packages the main job and the tests run: PostgreSQL (store tests start a real server from its binaries in
# /usr/lib/postgresql/<major>/bin), Chromium (the web UI tests) and a Chinese font (the UI is in Chinese by default:
# without one, pages and their screenshots show empty boxes). Checked first, so a machine that has them never
# runs apt (nor needs root); `apt-get update` only when something is to be installed
system:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || test -x /usr/bin/chromium || missing="$$missing chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "missing Debian packages:$$missing. Install them as root (sudo apt-get install$$missing)," \
	         "or run 'sudo make system', then run make again" >&2; exit 1; fi; \
	  echo "installing$$missing with apt-get"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing || exit 1; \
	fi

# the web UI serves ECharts and the API docs' Swagger UI from its own static folder (no CDN when it runs); the
# copies are not committed (.gitignore) and are made again when package-lock.json changes, i.e. when npm installed
# another version
web: $(ECHARTS) $(SWAGGER_UI)/swagger-ui-bundle.js

$(ECHARTS): node_modules/.installed package-lock.json
	mkdir -p $(dir $@)
	cp node_modules/echarts/dist/echarts.min.js $@

$(SWAGGER_UI)/swagger-ui-bundle.js: node_modules/.installed package-lock.json
	mkdir -p $(SWAGGER_UI)
	cp node_modules/swagger-ui-dist/swagger-ui.css node_modules/swagger-ui-dist/LICENSE $(SWAGGER_UI)/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js $@

# CometBFT, pinned, built from the Go module proxy into this checkout (never $GOPATH/bin); re-installed only when
# the binary is missing or reports another version, so a re-run is instant
$(COMETBFT):
	@command -v go >/dev/null || { echo "Go >= 1.22 is needed to install CometBFT (see README.md)" >&2; exit 1; }
	@test "$$($(COMETBFT) version 2>/dev/null)" = "$(COMETBFT_VERSION:v%=%)" || { \
	  echo "installing CometBFT $(COMETBFT_VERSION) into .bin/"; \
	  CGO_ENABLED=0 GOBIN=$(CURDIR)/.bin go install github.com/cometbft/cometbft/cmd/cometbft@$(COMETBFT_VERSION); }

# the native execution engine (chain/native: revm with the GM precompile, a PyO3 extension), built by cargo from
# crates.io through maturin into the venv; rebuilt when its sources change (about 5 minutes from clean on 2 cores).
# The node's default engine ([execution] engine = "native"); py-evm stays the reference the tests compare it with
NATIVE_STAMP := $(VENV)/.native-installed
NATIVE_SOURCES := $(wildcard chain/native/src/*.rs) chain/native/Cargo.toml chain/native/Cargo.lock chain/native/pyproject.toml

native: $(NATIVE_STAMP)

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SOURCES)
	@command -v cargo >/dev/null || { echo "Rust >= 1.91 (cargo) is needed to build the native engine (see README.md)" >&2; exit 1; }
	CARGO_BUILD_JOBS=$${CARGO_BUILD_JOBS:-2} $(PIP) install --no-deps ./chain/native
	touch $@

# the ABCI message classes, generated with grpcio-tools from the pinned module's .proto files (not committed)
proto: $(PROTO_STAMP)

$(PROTO_STAMP): $(STAMP) nodes/shancheng/nodes/abci/generate.py Makefile
	$(PY) -m shancheng.nodes.abci.generate --cometbft-version $(COMETBFT_VERSION)

clean:
	rm -rf $(VENV) node_modules demo-out .pytest_cache .bin nodes/shancheng/nodes/abci/_generated $(ECHARTS) $(SWAGGER_UI)
