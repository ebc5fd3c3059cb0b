# Shancheng Chain — the two commands of README.md:
#   make run    install what is needed (Python venv, npm solc + anvil for your own contracts), then run the main job
#   make test   install what is needed (Python venv, npm solc + anvil), then run the whole test suite
#
# Everything is installed into this checkout: .venv/ (Python) and node_modules/ (npm).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# quiet: setuptools' build-backend warnings (about 200 lines) are not for the user
PIP    := PYTHONWARNINGS=ignore $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint clean venv npm

run: venv npm
	$(VENV)/bin/shancheng dev --home .shancheng-dev --out demo-out

test: venv npm
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

clean:
	rm -rf $(VENV) node_modules demo-out .pytest_cache
