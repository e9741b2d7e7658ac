# Arctic Assist - developer entry points. `make setup && make test` on a fresh Debian 12 (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := qgis python3-qgis qgis-providers xvfb xauth python3-venv python3-pip
SITE := $(shell [ -x $(PY) ] && $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# QGIS and qgis_process run Debian's python3: put the venv's packages on its path
QGIS_ENV := PYTHONPATH=$(SITE) QT_QPA_PLATFORM=offscreen
PYTEST := $(PY) -m pytest
PROFILE_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
DATA ?= ../shared/data
export DATA

.PHONY: help setup apt venv test test-unit test-qgis test-cli test-gui lint package \
        install-plugin bench styles demo clean

help:
	@echo "make setup           install QGIS 3.22, xvfb (Debian) and the pinned venv (.venv)"
	@echo "make test            every test tier: unit, qgis, cli, gui"
	@echo "make test-ltr        tests/qgis and tests/cli on QGIS 3.40 LTR (a cached Debian 13 root)"
	@echo "make ltr-root        only build that root (/var/cache/arctic-assist/ltr-root)"
	@echo "make lint            ruff check, ruff format --check, flake8-qgis's QGIS rules"
	@echo "make package         dist/arctic_assist-<version>.zip"
	@echo "make install-plugin  link this checkout into your QGIS profile and enable it"
	@echo "make bench           benchmarks (numbers, not pass/fail)"

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install $$missing"; export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq $$missing > /dev/null; \
	else echo "Debian packages already installed: $(APT_PACKAGES)"; fi
	@qgis_process.bin --version 2>/dev/null | grep -m1 QGIS || true

venv:
	@[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	@$(PY) -c "import numpy, onnxruntime, onnx, torch, lightning, kornia; from osgeo import gdal_array; import qgis.core; print('venv ok: numpy', numpy.__version__, '| onnxruntime', onnxruntime.__version__, '| torch', torch.__version__, '| GDAL', gdal_array.gdal.__version__)"

test: test-unit test-qgis test-cli test-gui

test-unit:
	$(PYTEST) tests/unit -p no:pytest_qgis

test-qgis:
	$(QGIS_ENV) $(PYTEST) tests/qgis

test-cli:
	$(PYTEST) tests/cli -p no:pytest_qgis

test-gui:
	$(PYTEST) tests/gui -p no:pytest_qgis

lint:
	$(PY) -m ruff check arctic_assist tests benchmarks tools
	$(PY) -m ruff format --check arctic_assist tests benchmarks tools
	$(PY) -m flake8 arctic_assist tests benchmarks tools

package:
	$(PY) tools/package.py dist

install-plugin:
	@mkdir -p "$(PROFILE_DIR)/python/plugins"
	@rm -rf "$(PROFILE_DIR)/python/plugins/arctic_assist"
	$(PY) -c "import sys; sys.path.insert(0, 'tests'); from pathlib import Path; \
	  from support import link_checkout_plugin; link_checkout_plugin(Path('$(PROFILE_DIR)/python/plugins'))"
	$(PY) tools/enable_plugin.py "$(PROFILE_DIR)/QGIS/QGIS3.ini"
	@echo "Linked into $(PROFILE_DIR)/python/plugins/arctic_assist and enabled."
	@echo "Start QGIS with: PYTHONPATH=$(SITE) qgis"

bench:
	@for b in benchmarks/bench_*.py; do [ -e "$$b" ] || continue; echo "== $$b"; \
	  $(PY) $$b $(BENCH_ARGS) || exit 1; done

styles:
	$(QGIS_ENV) $(PY) tools/make_styles.py

clean:
	rm -rf dist test-artifacts .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

-include mk/*.mk

demo:
	$(PY) tools/demo.py demo
