# The two commands a newcomer needs: `make run` and `make test`. Both build .venv from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: help install run test up down bench lint clean

help:
	@echo "make run    local cloud + services, sample media through the chain, then serve (ONCE=1: exit after the table)"
	@echo "make test   the whole test suite against the local cloud"
	@echo "make up     start the local cloud and the services;  make down: stop them"
	@echo "make bench  benchmarks (bench/);  make lint: ruff"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing dependencies into $(VENV) (pinned by constraints.txt)..."
	@$(BIN)/pip install $(PIP_QUIET) -c constraints.txt -e '.[dev,bench]' 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mediarelay local run $(if $(ONCE),--once)

test: $(STAMP)
	$(BIN)/pytest

up: $(STAMP)
	$(BIN)/mediarelay local up

# Stops exactly what `make up` / `make run` started (pid files under .local/pids).
down:
	@if [ -x $(BIN)/mediarelay ]; then $(BIN)/mediarelay local down; else echo "nothing to stop (no $(VENV))"; fi

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .

clean: down
	rm -rf $(VENV) .local
