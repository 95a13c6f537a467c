# The two commands a newcomer needs: `make run` and `make test`. Both build .venv from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: help install system-packages browser-deps docs run test test-unit test-infra up down bench lint clean screenshots

help:
	@echo "make run    local cloud + services, sample media through the chain, then serve (ONCE=1: exit after the table)"
	@echo "make test   the whole test suite against the local cloud, then make test-infra"
	@echo "make test-infra  offline infrastructure checks: terraform fmt, checkov (own venv), terraform-vs-topology test"
	@echo "make up     start the local cloud and the services;  make down: stop them"
	@echo "make test-unit  the tests that need no local cloud, Java or Terraform (seconds)"
	@echo "make bench  benchmarks (bench/);  make lint: ruff + mypy"
	@echo "make screenshots  the operators' console pages into docs/console/ (a private local cloud)"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing dependencies into $(VENV) (pinned by constraints.txt)..."
	@$(BIN)/pip install $(PIP_QUIET) -c constraints.txt -e '.[dev,bench]' 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

# Debian packages the local stack runs beside the Python ones: nginx fronts ingest as in the
# container (services/common/front.py); chromium plays examples/player.html in the suite
# (tests/browser). Installed when missing and we are root; else the command.
SYSTEM_PACKAGES := nginx-light chromium
system-packages:
	@{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } && [ -x /usr/bin/chromium ] || { \
		if [ "$$(id -u)" = 0 ]; then echo "installing $(SYSTEM_PACKAGES) (apt-get)..."; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
		else echo "missing Debian packages: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; fi; }

# The browser test's npm packages (playwright-core drives the system chromium, never a browser
# download; hls.js is served to the player page), exactly as package-lock.json pins them.
BROWSER_STAMP := tests/browser/node_modules/.installed
$(BROWSER_STAMP): tests/browser/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: apt-get install npm" >&2; exit 1; }
	@cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@
browser-deps: $(BROWSER_STAMP)

install: $(STAMP) system-packages browser-deps

run: $(STAMP) system-packages
	$(BIN)/mediarelay local run $(if $(ONCE),--once)

# The webhook delivery tests run on a local cloud of their own: Pub/Sub paces one push
# subscription by its success rate, and the rest of the suite's gone receivers slow theirs.
WEBHOOK_TESTS := tests/cloud/test_webhooks.py tests/cloud/test_public_events.py
test: $(STAMP) system-packages browser-deps test-infra
	$(BIN)/pytest --durations=15 $(addprefix --ignore=,$(WEBHOOK_TESTS))
	$(BIN)/pytest $(WEBHOOK_TESTS)

# tests/unit: no local cloud, Java or Terraform; the rules of our own code and the media code,
# on both cores (pytest-xdist). tests/cloud, tests/infra and the exhaustive media sweeps
# (marker `slow`) run with `make test`.
test-unit: $(STAMP)
	$(BIN)/pytest tests/unit -n 2 -m "not slow"

# Offline checks of terraform/ and the Dockerfile (the google provider cannot be downloaded
# here, so no terraform init/validate): fmt (also catches broken HCL), then checkov from its
# own virtualenv, judged from its JSON report (checkov exits 0 on files it cannot parse).
# tests/test_terraform.py (topology vs. Terraform) runs with the rest of pytest.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV := $(CHECKOV_VENV)/bin/checkov --skip-download --download-external-modules false --output json

$(CHECKOV_STAMP): terraform/checkov-constraints.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@echo '*' > $(CHECKOV_VENV)/.gitignore
	@echo "installing checkov into $(CHECKOV_VENV) (pinned by terraform/checkov-constraints.txt)..."
	@$(CHECKOV_VENV)/bin/pip install $(PIP_QUIET) -c terraform/checkov-constraints.txt checkov 2> >(grep -v "^WARNING: Location" >&2)
	@touch $@

test-infra: $(CHECKOV_STAMP)
	@command -v terraform >/dev/null || { echo "terraform not found: install Terraform >= 1.5 (only 'fmt' runs, no provider needed)" >&2; exit 1; }
	@TF_CLI_CONFIG_FILE=/dev/null terraform fmt -check -recursive -diff terraform || { echo "terraform fmt: run 'terraform fmt -recursive terraform'" >&2; exit 1; }
	@echo "terraform fmt: ok"
	@$(CHECKOV) --directory terraform --framework terraform --external-checks-dir terraform/checkov \
		> $(CHECKOV_VENV)/terraform.json 2> $(CHECKOV_VENV)/checkov.log || true
	@$(CHECKOV) --file Dockerfile --framework dockerfile > $(CHECKOV_VENV)/dockerfile.json 2>> $(CHECKOV_VENV)/checkov.log || true
	@$(CHECKOV_VENV)/bin/python tests/infra/checkov_gate.py \
		terraform=$(CHECKOV_VENV)/terraform.json dockerfile=$(CHECKOV_VENV)/dockerfile.json \
		|| { echo "checkov: reports and log in $(CHECKOV_VENV)/" >&2; exit 1; }

up: $(STAMP) system-packages
	$(BIN)/mediarelay local up

# Stops exactly what `make up` / `make run` started (pid files under .local/pids).
down:
	@if [ -x $(BIN)/mediarelay ]; then $(BIN)/mediarelay local down; else echo "nothing to stop (no $(VENV))"; fi

# docs/configuration.md is made from the settings' one declaration (a unit test checks it).
docs: $(STAMP)
	$(BIN)/python -m services.common.config > docs/configuration.md

bench: $(STAMP)
	$(BIN)/python -m bench

# The console's pages in docs/console/ (docs/console.md shows them), from a private local cloud
# with sample jobs. Not run by CI: it writes tracked files.
screenshots: $(STAMP) system-packages browser-deps
	$(BIN)/python -m tests.support.screenshots docs/console

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean: down
	rm -rf $(VENV) $(CHECKOV_VENV) .local
